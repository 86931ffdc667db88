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


def study_candidates(name: str = STUDY, max_minutes: float = MAX_MINUTES) -> list[dict]:
    """Every finished run length of study ``name`` (mean FID over its seeds) that trains within ``max_minutes`` on
    the study's benchmarked idle machine (its steps x ``study --bench``'s seconds per step), lowest FID first. Only
    a run's finished end point counts: a mid-run point of a decaying learning rate is not what a run of that
    length would reach."""
    per_step = compute.seconds_per_step(name)
    if per_step is None:
        raise CourseError(f"results/study/{name}/bench.json is missing: the minutes of each run come from it. Fix: "
                          f"python -m course_utils study --name {name} --bench (on an otherwise idle machine).")
    groups: dict = {}
    for rec in compute.load_all(name, None):
        end = compute.point_at(rec, rec["steps"])
        if end is not None and end.get("finished", True):
            groups.setdefault((rec["preset"], rec["steps"], rec.get("kind", "budget")), []).append(end["fid"])
    rows = []
    for (preset, steps, kind), fids in groups.items():
        if preset not in per_step:
            continue
        minutes = steps * per_step[preset] / 60
        if minutes <= max_minutes:
            rows.append({"preset": preset, "steps": steps, "kind": kind, "seeds": len(fids),
                         "fid": statistics.fmean(fids), "fid_sd": statistics.stdev(fids) if len(fids) > 1 else None,
                         "idle_minutes": minutes})
    return sorted(rows, key=lambda r: r["fid"])


def study_choice(name: str = STUDY, max_minutes: float = MAX_MINUTES) -> dict:
    """best-cpu's recipe re-chosen from study ``name``: the candidate with the lowest FID, as a recipe dict with
    the study's own training and diffusion settings, and a ``why`` that names the study's row it came from."""
    rows = study_candidates(name, max_minutes)
    if not rows:
        raise CourseError(f"no finished run of results/study/{name} trains within {max_minutes} min. Fix: let the "
                          "study finish more runs (python -m course_utils study --recipe best).")
    st, win = compute.get_study(name), rows[0]
    r = st.recipe
    recipe = {"preset": win["preset"], "steps": win["steps"], "lr": r["lr"], "lr_schedule": r.get("lr_schedule", "constant"),
              "batch_size": r["batch_size"], "ema": r["ema"], "overrides": dict(st.overrides)}
    sd = f" ± {win['fid_sd']:.1f}" if win["fid_sd"] is not None else ""
    why = (f"the lowest FID within {max_minutes:g} min of 2-core training in results/study/{name}: "
           f"{win['preset']}, {win['steps']:,} steps ({'its finished equal-step run' if win['kind'] == 'steps' else 'its run to the study budget'}), "
           f"FID {win['fid']:.1f}{sd} over {win['seeds']} seed{'s' if win['seeds'] > 1 else ''} at n = "
           f"{st.evaluation['n']} ({st.evaluation['sampler'].upper()} {st.evaluation['steps']} steps), "
           f"{win['idle_minutes']:.1f} min on the study's benchmarked idle machine")
    return {"recipe": recipe, "why": why, "row": win, "candidates": rows}


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
              why: str | None = None) -> dict:
    """Train the model ``name`` (best-cpu unless told), make BatchNorm statistics right for its EMA weights (if it
    has any), evaluate it on ``n`` samples and export it with its manifest. A class-conditional model is also
    swept over the guidance weights (``sweep``: guidance_sweep's arguments, default ``SWEEP``)."""
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
         "why": why or ("the best-cpu recipe with class labels (notebook 10)" if guided else
                        "chosen from the compute-aware study (results/study/cpu): see docs/results.md"),
         "steps": hist.steps, "epochs": round(hist.steps * recipe["batch_size"] / (STEPS_PER_EPOCH * 128), 2),
         "seed": 0, "ema_decay": recipe["ema"], "wall_seconds": round(hist.seconds, 1),
         "train_minutes": round(minutes, 1), "final_loss": round(hist.final_loss(), 5),
         "metrics": {**metrics, "eval_seconds": round(seconds, 1)},
         "fid_to_floor": round(metrics["fid"] / metrics["fid_floor"], 2),
         "checkerboard_to_real": round(metrics["checkerboard"] / metrics["checkerboard_real"], 2),
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
