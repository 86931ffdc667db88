"""The best U-Net a 2-core laptop trains in 30 minutes: ``python -m course_utils best-cpu``.

``BEST`` is ``optimized`` under the zero-terminal-SNR schedule with v-prediction, Adam with a cosine learning rate,
batch 128, EMA 0.999; docs/results.md says which measurements chose it. Resumable (``runs/specs/best-cpu-KEY/``); scored
like every shipped checkpoint (1,000 DDPM samples, seed 0) and exported as fp16 EMA weights with a manifest.
``--conditional`` trains notebook 10's class-conditional twin (``COND``) and adds its guidance sweep to the manifest.
"""
from __future__ import annotations

import json
import statistics
from pathlib import Path

from course_utils.checkpoints import save_checkpoint
from course_utils.data import load
from course_utils.errors import CourseError
from course_utils.evaluation.evaluate import EvalSettings
from course_utils.evaluation.guidance import format_sweep, guidance_sweep
from course_utils.model.unet import count_params
from course_utils.paths import checkpoint_dir, relative
from course_utils.stats import pooled_sd
from course_utils.study import compute
from course_utils.study.runspec import Recipe, RunSpec, metrics_of, score
from course_utils.study.ship import base_manifest
from course_utils.system import atomic_write_text
from course_utils.train import STEPS_PER_EPOCH, recompute_batchnorm

NAME = "best-cpu"
BEST = {"preset": "optimized", "steps": 3000, "lr": 1e-3, "lr_schedule": "cosine", "batch_size": 128, "ema": 0.999,
        "overrides": {"schedule": "linear", "zero_terminal_snr": True, "prediction": "v"}}
COND_NAME = "optimized_cond-final"
COND = {**BEST, "preset": "optimized_cond"}
SWEEP = {"n_per_class": 100, "sampler": "ddim", "steps": 50, "eta": 1.0}
N = 1000
MAX_MINUTES = 30
# how every shipped checkpoint is scored: n DDPM samples (all T steps), seed 0, BatchNorm statistics recomputed
SHIPPED_EVAL = EvalSettings(n=N, sampler="ddpm", steps=None, eta=0.0)


STUDY = "cpu-best-recipe"  # the study best-cpu is chosen from (python -m course_utils study --recipe best)


def _groups(name: str) -> dict:
    """{(preset, steps, kind): [FID of each seed's finished end point]} of study ``name``. Only a run's finished end
    point counts: a mid-run point of a decaying learning rate is not what a run of that length would reach."""
    groups: dict = {}
    for rec in compute.load_all(name, None):
        end = compute.point_at(rec, rec["steps"])
        if end is not None and end.get("finished", True):
            groups.setdefault((rec["preset"], rec["steps"], rec.get("kind", "budget")), []).append(end["fid"])
    return groups


def _row(key: tuple, fids: list, per_step: dict) -> dict:
    preset, steps, kind = key
    return {"preset": preset, "steps": steps, "kind": kind, "seeds": len(fids), "fid": statistics.fmean(fids),
            "fid_sd": statistics.stdev(fids) if len(fids) > 1 else None,
            "idle_minutes": steps * per_step[preset] / 60 if preset in per_step else None}


def _per_step(name: str) -> dict:
    per_step = compute.seconds_per_step(name)
    if per_step is None:
        raise CourseError(f"results/study/{name}/bench.json is missing: the minutes of each run come from it. Fix: "
                          f"python -m course_utils study --name {name} --bench (on an otherwise idle machine).")
    return per_step


def study_candidates(name: str = STUDY, max_minutes: float = MAX_MINUTES) -> list[dict]:
    """Every finished run length of study ``name`` (mean FID over its seeds) that trains within ``max_minutes`` on
    the study's benchmarked idle machine (its steps x ``study --bench``'s seconds per step), lowest FID first.
    The minutes are those of the machine the study ran on, not of the machine that trained best-cpu: a study's
    runs are only comparable on one clock."""
    per_step = _per_step(name)
    rows = [_row(k, f, per_step) for k, f in _groups(name).items()]
    return sorted((r for r in rows if r["idle_minutes"] is not None and r["idle_minutes"] <= max_minutes),
                  key=lambda r: r["fid"])


def _how(st, row: dict) -> str:
    sd = f" ± {row['fid_sd']:.1f}" if row["fid_sd"] is not None else ""
    run = "its finished equal-step run" if row["kind"] == "steps" else "its run to the study budget"
    return (f"{row['preset']}, {row['steps']:,} steps ({run}), FID {row['fid']:.1f}{sd} over {row['seeds']} "
            f"seed{'s' if row['seeds'] > 1 else ''} at n = {st.evaluation['n']} ({st.evaluation['sampler'].upper()} "
            f"{st.evaluation['steps']} steps), {row['idle_minutes']:.1f} min on the study's benchmarked idle machine")


def study_choice(name: str = STUDY, max_minutes: float = MAX_MINUTES, incumbent: dict = BEST) -> dict:
    """best-cpu re-chosen from study ``name``: the candidate with the lowest FID (:func:`study_candidates`), as a
    recipe dict with the study's own training and diffusion settings, and a ``why`` that names the study's row.

    The candidate replaces today's best-cpu (``incumbent``, whose row in the study is found by preset and steps)
    only if its mean FID is lower by more than two pooled seed-to-seed spreads (the course's verdict rule). If
    not, ``keep`` is True, the recipe is the incumbent's and the ``why`` says so, naming the incumbent's row."""
    st, per_step = compute.get_study(name), _per_step(name)
    groups = _groups(name)
    rows = study_candidates(name, max_minutes)
    if not rows:
        raise CourseError(f"no finished run of results/study/{name} trains within {max_minutes:g} min. Fix: let the "
                          "study finish more runs (python -m course_utils study --recipe best).")
    inc_key = min((k for k in groups if k[:2] == (incumbent["preset"], incumbent["steps"])),
                  key=lambda k: k[2] != "budget", default=None)
    inc = _row(inc_key, groups[inc_key], per_step) if inc_key else None
    spread = pooled_sd(list(groups.values()))
    win = rows[0]
    r = st.recipe
    recipe = {"preset": win["preset"], "steps": win["steps"], "lr": r["lr"], "lr_schedule": r.get("lr_schedule", "constant"),
              "batch_size": r["batch_size"], "ema": r["ema"], "overrides": dict(st.overrides)}
    thr = None if spread is None else 2 * spread
    same = inc is not None and (win["preset"], win["steps"]) == (inc["preset"], inc["steps"])
    beats = inc is None or same or (thr is not None and inc["fid"] - win["fid"] > thr)
    if beats:
        why = (f"the lowest FID within {max_minutes:g} min of 2-core training in results/study/{name}: "
               + _how(st, win))
        if inc is not None and not same:
            why += f"; it beats today's best-cpu ({inc['fid']:.1f}) by more than two seed-to-seed spreads ({thr:.1f})"
        return {"recipe": recipe, "why": why, "row": win, "candidates": rows, "keep": False, "incumbent": inc,
                "threshold": thr}
    diff = win["fid"] - inc["fid"]
    if diff >= 0:
        gap = f"is worse ({diff:+.1f} FID)"
    elif thr is not None:
        gap = f"is {diff:+.1f} FID against it, within two seed-to-seed spreads ({thr:.1f})"
    else:
        gap = f"is {diff:+.1f} FID against it, which cannot be judged yet (no seed-to-seed spread measured)"
    why = (f"kept: today's best-cpu is results/study/{name}'s row " + _how(st, inc)
           + f". The lowest FID within {max_minutes:g} min on that machine, {win['preset']} at {win['steps']:,} steps "
           f"({win['fid']:.1f}, {win['idle_minutes']:.1f} min), {gap}")
    return {"recipe": {**incumbent}, "why": why, "row": inc, "candidates": rows, "keep": True, "incumbent": inc,
            "threshold": thr}


def name_study_row(choice: dict, checkpoints: str | Path | None = None, name: str = NAME) -> Path:
    """Write a kept choice (:func:`study_choice`, ``keep`` True) into the shipped manifest of ``name`` without
    retraining: its ``why`` and ``study_row``. A manifest of another recipe is refused."""
    f = (Path(checkpoints) if checkpoints else checkpoint_dir()) / f"{name}.json"
    if not f.is_file():
        raise CourseError(f"{relative(f)} is missing. Fix: python -m course_utils best-cpu (trains and ships it).")
    m = json.loads(f.read_text())
    if m.get("recipe") != choice["recipe"]:
        raise CourseError(f"{relative(f)} was trained with another recipe than the one the study keeps. Fix: "
                          "python -m course_utils best-cpu --from-study retrains it when the choice changes.")
    m["why"], m["study_row"] = choice["why"], choice["row"]
    atomic_write_text(f, json.dumps(m, indent=1) + "\n")
    return f


def refresh_study_row(name: str = STUDY, checkpoints: str | Path | None = None) -> dict | None:
    """After a run of study ``name`` finishes: if the study keeps today's best-cpu (:func:`study_choice`), rewrite
    the shipped manifest's ``why`` and ``study_row`` to its current numbers; returns the choice (``keep`` False:
    a run beats best-cpu and ``best-cpu --from-study`` should retrain it), or None where no choice can be made yet
    (no bench.json, no finished run within the minutes, no shipped best-cpu)."""
    try:
        choice = study_choice(name)
        if choice["keep"]:
            name_study_row(choice, checkpoints)
    except CourseError:
        return None
    return choice


def spec_of(recipe: dict = BEST, name: str = NAME, folder: str | Path | None = None) -> RunSpec:
    """The run a recipe dict stands for (seed 0), named ``name``, training in ``folder`` if given."""
    r = Recipe(recipe["lr"], recipe["batch_size"], recipe["ema"], recipe.get("lr_schedule", "constant"))
    spec = RunSpec.of(recipe["preset"], recipe["steps"], 0, r, recipe.get("overrides"), label=name)
    return spec if folder is None else spec.moved(folder)


def train_best(recipe: dict = BEST, folder: str | Path | None = None, progress: bool = True, device=None,
               name: str = NAME):
    """Train (or resume, or reuse) the run ``name`` (best-cpu unless told) with ``recipe``; returns
    (EMA model, history, folder). A folder holding a run of another recipe is refused."""
    spec = spec_of(recipe, name, folder)
    spec.train_to(spec.steps, progress, device)
    return spec.load()[0].eval(), spec.history(), spec.folder


def _sweep(model, spec: RunSpec, how: dict, progress: bool) -> dict:
    """The guidance sweep of a class-conditional model, cached beside its run for the same checkpoint and settings."""
    cache = spec.folder / "guidance-sweep.json"
    stamp = spec.checkpoint.stat().st_mtime_ns
    saved = json.loads(cache.read_text()) if cache.is_file() else {}
    if saved.get("checkpoint_mtime_ns") == stamp and saved.get("how") == how:
        return saved["sweep"]
    guided = guidance_sweep(model, n_per_class=how["n_per_class"], progress=progress,
                            **{k: v for k, v in how.items() if k != "n_per_class"})
    guided["how"] = how
    atomic_write_text(cache, json.dumps({"checkpoint_mtime_ns": stamp, "how": how, "sweep": guided}))
    return guided


def ship_best(recipe: dict = BEST, n: int = N, checkpoints: str | Path | None = None,
              folder: str | Path | None = None, command: str = "python -m course_utils best-cpu",
              progress: bool = True, device=None, name: str = NAME, sweep: dict | None = None,
              chosen: dict | None = None) -> dict:
    """Train the model ``name`` (best-cpu unless told), make BatchNorm statistics right for its EMA weights (if it
    has any), evaluate it on ``n`` samples and export it with its manifest. A class-conditional model is also
    swept over the guidance weights (``sweep``: guidance_sweep's arguments, default ``SWEEP``). ``chosen`` (a
    :func:`study_choice`) gives the manifest's ``why`` and ``study_row``."""
    model, hist, d = train_best(recipe, folder, progress, device, name=name)
    spec = spec_of(recipe, name, folder)
    point = score(spec, EvalSettings(n=n, sampler="ddpm", steps=None, eta=0.0), progress=progress, device=device)
    metrics, seconds = metrics_of(point), point["eval_seconds"]
    recompute_batchnorm(model, load("train"))  # a no-op for a GroupNorm network
    minutes = hist.seconds / 60
    ckdir = Path(checkpoints) if checkpoints else checkpoint_dir()
    dest = ckdir / f"{name}.safetensors"
    guided = _sweep(model, spec, {**SWEEP, **(sweep or {})}, progress) if model.config.num_classes else None
    save_checkpoint(dest, model, recipe["preset"], half=True, step=hist.steps, budget=name, seed=0, weights="ema",
                    manifest=dest.with_suffix(".json").name)
    m = {**base_manifest(recipe["preset"], command, config=model.config.to_dict()), "params": count_params(model),
         "recipe": recipe,
         "budget": f"at most {MAX_MINUTES} minutes of training on the machine below",
         "why": chosen["why"] if chosen else ("the best-cpu recipe with class labels (notebook 10)" if guided else
                        "chosen from the compute-aware study (results/study/cpu): see docs/results.md"),
         "steps": hist.steps, "epochs": round(hist.steps * recipe["batch_size"] / (STEPS_PER_EPOCH * 128), 2),
         "seed": 0, "ema_decay": recipe["ema"], "wall_seconds": round(hist.seconds, 1),
         "train_minutes": round(minutes, 1), "final_loss": round(hist.final_loss(), 5),
         "metrics": {**metrics, "eval_seconds": round(seconds, 1)},
         "fid_to_floor": round(metrics["fid"] / metrics["fid_floor"], 2),
         "checkerboard_to_real": round(metrics["checkerboard"] / metrics["checkerboard_real"], 2),
         **({"study_row": chosen["row"]} if chosen else {}),
         "run": relative(d), "file": dest.name, "bytes": dest.stat().st_size, "dtype": "float16", "weights": "ema"}
    if guided:
        m["guidance"] = guided
        m["guidance_command"] = (f"python -m course_utils evaluate {name} --sampler {guided['how']['sampler']} "
                                 f"--steps {guided['how']['steps']} --eta {guided['how']['eta']:g} -n {10 * guided['how']['n_per_class']}")
    atomic_write_text(dest.with_suffix(".json"), json.dumps(m, indent=1) + "\n")
    if progress:
        print(f"shipped {dest}: FID {metrics['fid']:.2f} vs floor {metrics['fid_floor']:.2f} at n={n} "
              f"(ratio {m['fid_to_floor']}) after {minutes:.1f} min of training")
        if guided:
            print(format_sweep(guided))
        if minutes > MAX_MINUTES:
            print(f"warning: training took {minutes:.1f} min, more than the {MAX_MINUTES} this model stands for "
                  "(was the machine busy with other work?)")
    return m
