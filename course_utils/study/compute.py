"""The compute-aware study: every ladder rung trained to the **same training compute** (FLOPs), evaluated at
several points along the way, so that Fashion-FID can be drawn against steps *and* against compute
(``python -m course_utils study``).

Why: ``optimized`` costs about 12x the baseline's FLOPs per training step (``course_utils.model.cost``). Comparing
rungs at equal steps says what an idea does to the network; comparing them at equal compute says what it is worth
on a given machine. The budget is the compute of ``REFERENCE_STEPS`` steps of ``optimized``; a preset that costs
less per step gets proportionally more steps. Every run is evaluated at the fractions ``FRACTIONS`` of its own
budget and also at ``REFERENCE_STEPS`` steps (the equal-step view).

Every run follows one recipe (``RECIPE``: Adam at a constant learning rate, batch 128, an EMA of the weights
whose BatchNorm statistics are averaged too) and is evaluated on its EMA weights, with BatchNorm statistics
recomputed for them, and the sampler in ``EVAL``.

Resumable and nothing lost: runs train in segments from milestone to milestone in ``runs/study/``; after each
milestone its evaluation is appended to ``results/study/<name>/runs/<preset>-seed<seed>.json`` (small JSON, meant
to be committed as it arrives). Start the command again and it continues with the next missing milestone.
"""
from __future__ import annotations

import json
import math
import statistics
import time
from pathlib import Path

from course_utils.checkpoints import atomic_write_text, hardware, load_checkpoint, read_checkpoint
from course_utils.errors import CourseError
from course_utils.model.cost import sample_gflops_per_image, train_gflops
from course_utils.model.unet import LADDER, WIDTH_STEPS, get_preset
from course_utils.paths import results_dir, runs_root
from course_utils.train import Budget

REFERENCE = "optimized"
REFERENCE_STEPS = 1000
FRACTIONS = (0.125, 0.25, 0.5, 1.0)
# the order runs are made in: the two ends of the ladder first, then one seed of every rung between them, then
# the extra seeds of the two ends
# the order runs are made in: the two ends of the ladder first, then one seed of every rung between them, then
# the extra seeds of the two ends, then the width side study (the width idea's three changes one at a time)
WIDTH_PARTS = WIDTH_STEPS[1:-1]
PLAN = ([("baseline", 0), ("optimized", 0)] + [(p, 0) for p in LADDER if p not in ("baseline", "optimized")]
        + [("baseline", 1), ("optimized", 1), ("baseline", 2), ("optimized", 2)] + [(p, 0) for p in WIDTH_PARTS])
# the presets in the order the table and the curves show them: the width parts between upsample and wide
ORDER = LADDER[:LADDER.index("wide")] + WIDTH_PARTS + LADDER[LADDER.index("wide"):]
RECIPE = {"lr": 1e-3, "batch_size": 128, "ema": 0.999}
LR_SCHEDULES = ("constant", "cosine")


def make_recipe(lr: float | None = None, batch_size: int | None = None, ema: float | None = None,
                lr_schedule: str = "constant") -> dict:
    """``RECIPE`` with changes; ``lr_schedule="cosine"`` decays the learning rate to 0 over each run's budget.
    (A constant schedule adds no key, so the study's recorded settings stay those of its existing runs.)"""
    if lr_schedule not in LR_SCHEDULES:
        raise CourseError(f"unknown learning-rate schedule {lr_schedule!r}; choose one of {', '.join(LR_SCHEDULES)}.")
    recipe = {"lr": lr or RECIPE["lr"], "batch_size": batch_size or RECIPE["batch_size"], "ema": ema or RECIPE["ema"]}
    if lr_schedule != "constant":
        recipe["lr_schedule"] = lr_schedule
    return recipe
# DDIM with 50 steps and eta = 1 comes within 6% of DDPM's FID at 3x its speed (results/samplers/optimized-final);
# BatchNorm statistics of the EMA weights are recomputed before sampling (``ema-check`` shows why).
EVAL = {"n": 500, "sampler": "ddim", "steps": 50, "eta": 1.0, "batchnorm": "recomputed"}


def study_dir(name: str = "cpu") -> Path:
    return results_dir() / "study" / name


def budget_gflop(reference_steps: int = REFERENCE_STEPS) -> float:
    """The training compute every rung gets: ``reference_steps`` steps of ``optimized`` (GFLOP)."""
    return reference_steps * train_gflops(REFERENCE)


def steps_for(preset: str, reference_steps: int = REFERENCE_STEPS) -> int:
    """The steps of ``preset`` that cost the budget's compute."""
    return max(1, round(budget_gflop(reference_steps) / train_gflops(preset)))


def milestones(preset: str, reference_steps: int = REFERENCE_STEPS, fractions=FRACTIONS) -> list[int]:
    """Where a run is evaluated: the fractions of its own budget, and the reference steps (the equal-step view)."""
    total = steps_for(preset, reference_steps)
    points = {max(1, round(f * total)) for f in fractions} | {reference_steps}
    return sorted(p for p in points if p <= total)


def run_folder(preset: str, seed: int, name: str = "cpu") -> Path:
    return runs_root() / "study" / name / f"{preset}-seed{seed}"


def result_file(preset: str, seed: int, name: str = "cpu") -> Path:
    return study_dir(name) / "runs" / f"{preset}-seed{seed}.json"


def _settings(reference_steps: int, fractions, recipe: dict, evaluation: dict) -> dict:
    return {"reference": REFERENCE, "reference_steps": reference_steps, "fractions": list(fractions),
            "recipe": recipe, "eval": evaluation}


def load_run(preset: str, seed: int, name: str = "cpu") -> dict | None:
    f = result_file(preset, seed, name)
    return json.loads(f.read_text()) if f.is_file() else None


def run_one(preset: str, seed: int, name: str = "cpu", reference_steps: int = REFERENCE_STEPS, fractions=FRACTIONS,
            recipe: dict = RECIPE, evaluation: dict = EVAL, progress: bool = True, device=None) -> dict:
    """Train ``preset`` (seed ``seed``) to the budget in segments, evaluating at every milestone; resumable."""
    from course_utils.evaluation.evaluate import default_classifier, evaluate
    from course_utils.study.runs import train_preset
    get_preset(preset)
    settings = _settings(reference_steps, fractions, recipe, evaluation)
    total = steps_for(preset, reference_steps)
    record = load_run(preset, seed, name)
    if record is not None and record.get("settings") != settings:
        raise CourseError(f"{result_file(preset, seed, name)} was made with other settings ({record.get('settings')}). "
                          "Fix: choose another study name (--name) or move that file away.")
    record = record or {"preset": preset, "seed": seed, "settings": settings, "steps": total,
                        "train_gflops_per_step": train_gflops(preset),
                        "sample_gflops_per_image": sample_gflops_per_image(preset, evaluation.get("steps")),
                        "hardware": hardware(), "points": []}
    done = {p["step"] for p in record["points"]}
    folder = run_folder(preset, seed, name)
    ckpt = folder / "model.safetensors"
    budget = Budget("study", total, total, 16, 1, f"the compute of {reference_steps} {REFERENCE} steps")
    callbacks = []
    if recipe.get("lr_schedule") == "cosine":
        from course_utils.train import LRSchedule
        callbacks = [LRSchedule.cosine(total=total)]  # over the whole budget, across the resumed segments
    clf = None
    for m in milestones(preset, reference_steps, fractions):
        if m in done:
            continue
        at = read_checkpoint(ckpt)[1]["meta"].get("step", 0) if ckpt.is_file() else 0
        if at > m:
            raise CourseError(f"{ckpt} is at step {at}, past the milestone {m} that has no evaluation yet. "
                              f"Fix: delete {folder} to train this run again.")
        if at < m:
            if progress:
                print(f"{preset} seed {seed}: training to step {m} of {total}", flush=True)
            train_preset(preset, budget, seed=seed, out=folder, steps=m, ema_decay=recipe["ema"], resume=at > 0,
                         progress=progress, device=device, lr=recipe["lr"], batch_size=recipe["batch_size"],
                         save_every=100, callbacks=callbacks)
        model, header = load_checkpoint(ckpt, preset, use_ema=True)
        meta = header["meta"]
        clf = clf or default_classifier()
        t0 = time.perf_counter()
        if evaluation.get("batchnorm") == "recomputed":
            from course_utils.data import load
            from course_utils.train import recompute_batchnorm
            recompute_batchnorm(model, load("train"))  # a no-op for GroupNorm rungs
        sample_kwargs = {k: v for k, v in evaluation.items() if k not in ("n", "batchnorm")}
        metrics = evaluate(model, n=evaluation["n"], seed=0, classifier=clf, **sample_kwargs)
        losses = meta.get("losses", [])
        point = {"step": m, "train_tflop": m * record["train_gflops_per_step"] / 1e3,
                 "train_seconds": meta.get("seconds"), "loss": statistics.fmean(losses[-50:]) if losses else None,
                 "eval_seconds": time.perf_counter() - t0, "weights": header.get("weights"), **metrics}
        record["points"] = sorted(record["points"] + [point], key=lambda p: p["step"])
        atomic_write_text(result_file(preset, seed, name), json.dumps(record, indent=1))
        if progress:
            print(f"{preset} seed {seed} step {m}: FID {metrics['fid']:.2f} (floor {metrics['fid_floor']:.2f}), "
                  f"{point['train_tflop']:.1f} TFLOP, {point['train_seconds']:.0f} s of training", flush=True)
    return record


SAMPLES = 32  # images in each finished run's sample grid


def samples_file(preset: str, seed: int, name: str = "cpu") -> Path:
    return study_dir(name) / "samples" / f"{preset}-seed{seed}.png"


def save_samples(preset: str, seed: int, name: str = "cpu", n: int = SAMPLES) -> Path | None:
    """A grid of ``n`` samples (seed 0, the study's sampler) from a finished run's EMA weights with BatchNorm
    statistics recomputed, as a pixel-exact grayscale PNG (8 per row, 16x16 pixels each) in
    results/study/<name>/samples/; None when the run's checkpoint is not on this machine or not finished."""
    record = load_run(preset, seed, name)
    ckpt = run_folder(preset, seed, name) / "model.safetensors"
    if record is None or not ckpt.is_file():
        return None
    model, header = load_checkpoint(ckpt, preset, use_ema=True)
    if header["meta"].get("step") != record["steps"]:
        return None
    from course_utils.data import load
    from course_utils.diffusion import sample
    from course_utils.plotting import save_grid_png
    from course_utils.train import recompute_batchnorm
    recompute_batchnorm(model, load("train"))
    ev = record["settings"]["eval"]
    imgs = sample(model, n, seed=0, sampler=ev["sampler"], steps=ev.get("steps"), eta=ev.get("eta", 0.0))
    save_grid_png(imgs, samples_file(preset, seed, name))
    return samples_file(preset, seed, name)


def is_finished(record: dict | None, preset: str, reference_steps: int = REFERENCE_STEPS, fractions=FRACTIONS) -> bool:
    """Whether a run's record has an evaluation at every milestone."""
    return record is not None and {p["step"] for p in record["points"]} >= set(milestones(preset, reference_steps,
                                                                                           fractions))


def study(name: str = "cpu", plan: list[tuple[str, int]] | None = None, reference_steps: int = REFERENCE_STEPS,
          fractions=FRACTIONS, recipe: dict = RECIPE, evaluation: dict = EVAL, max_runs: int | None = None,
          progress: bool = True, device=None) -> dict:
    """Make (or continue) every run of ``plan`` in order, then summarize what is there."""
    plan = plan or PLAN
    made = 0
    for preset, seed in plan:
        if is_finished(load_run(preset, seed, name), preset, reference_steps, fractions):
            if not samples_file(preset, seed, name).is_file():  # runs finished before grids were saved
                save_samples(preset, seed, name)
            continue
        if max_runs is not None and made >= max_runs:
            break
        run_one(preset, seed, name, reference_steps, fractions, recipe, evaluation, progress, device)
        save_samples(preset, seed, name)
        made += 1
        summarize(name)
    return summarize(name)


# --- summary ------------------------------------------------------------------------------------------------

def load_all(name: str = "cpu") -> list[dict]:
    folder = study_dir(name) / "runs"
    return [json.loads(f.read_text()) for f in sorted(folder.glob("*.json"))] if folder.is_dir() else []


def _mean_sd(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else float("nan"))


def point_at(record: dict, step: int) -> dict | None:
    return next((p for p in record["points"] if p["step"] == step), None)


def summarize(name: str = "cpu") -> dict:
    """Both views per preset (mean ± sd over seeds): FID at equal steps (the reference steps) and at equal
    compute (each run's last milestone); written to results/study/<name>/summary.json, table.md, curves.png."""
    records = load_all(name)
    if not records:
        return {"rows": []}
    settings = records[0]["settings"]
    ref_steps = settings["reference_steps"]
    rows = []
    for preset in [p for p in ORDER if any(r["preset"] == p for r in records)]:
        mine = [r for r in records if r["preset"] == preset]
        row = {"preset": preset, "width_part": preset in WIDTH_PARTS, "seeds": sorted(r["seed"] for r in mine),
               "train_gflops": mine[0]["train_gflops_per_step"], "budget_steps": mine[0]["steps"]}
        for view, step_of in (("equal_steps", lambda r: ref_steps), ("equal_compute", lambda r: r["steps"])):
            pts = [point_at(r, step_of(r)) for r in mine]
            pts = [p for p in pts if p is not None]
            if pts:
                row[view] = {"step": pts[0]["step"], "seeds": len(pts), "fids": [p["fid"] for p in pts],
                             "fid": _mean_sd([p["fid"] for p in pts]), "fid_floor": pts[0]["fid_floor"],
                             # the median: a run that shared the machine with other work takes longer
                             "train_seconds": statistics.median(p["train_seconds"] for p in pts),
                             "checkerboard_ratio": statistics.fmean(p["checkerboard"] / p["checkerboard_real"] for p in pts),
                             "dark_fraction": statistics.fmean(p["dark_fraction"] for p in pts)}
        rows.append(row)
    out = {"name": name, "settings": settings, "rows": rows, "runs": len(records)}
    folder = study_dir(name)
    atomic_write_text(folder / "summary.json", json.dumps(out, indent=1))
    atomic_write_text(folder / "table.md", markdown(out))
    atomic_write_text(folder / "verdicts.md", verdicts_markdown(out))
    from course_utils import plotting
    plotting.save(plot_curves(records), folder / "curves.png")
    return out


def run_spread(summary: dict, view: str) -> float | None:
    """The seed-to-seed spread of one run's FID in ``view``: :func:`course_utils.stats.pooled_sd` over the presets
    with two or more seeds (None if there are none)."""
    from course_utils.stats import pooled_sd
    groups = [r[view]["fids"] for r in summary["rows"] if view in r]
    return pooled_sd(groups)


def verdict(before: dict, after: dict, spread: float | None) -> str:
    """'better', 'worse' or 'within noise' for a change of mean FID from ``before`` to ``after`` (summary views):
    a difference counts when it exceeds two spreads of a single run's FID."""
    diff = after["fid"][0] - before["fid"][0]
    if spread is None:
        return "spread not measured yet"
    if abs(diff) <= 2 * spread:
        return "within noise"
    return "better" if diff < 0 else "worse"


def steps_of_ladder(summary: dict) -> list[dict]:
    """Each step of the ladder (and of the width side study) with its change of mean FID and verdict in both
    views: [{"from", "to", "idea", "equal_steps": {"change", "verdict"}, "equal_compute": {...}}, ...]."""
    from course_utils.model.unet import PRESETS
    rows = {r["preset"]: r for r in summary["rows"]}
    chains = [LADDER, WIDTH_STEPS]
    out = []
    for chain in chains:
        for before, after in zip(chain, chain[1:]):
            if before not in rows or after not in rows or (chain is WIDTH_STEPS and after == "wide"
                                                           and "wide_upconvs" not in rows):
                continue
            step = {"from": before, "to": after, "idea": PRESETS[after].idea, "width_part": chain is WIDTH_STEPS}
            for view in ("equal_steps", "equal_compute"):
                a, b = rows[before].get(view), rows[after].get(view)
                if a and b:
                    step[view] = {"change": b["fid"][0] - a["fid"][0],
                                  "verdict": verdict(a, b, run_spread(summary, view))}
            out.append(step)
    return out


def verdicts_markdown(summary: dict) -> str:
    """The ladder's steps as a table: the change of FID and the verdict at equal steps and at equal compute."""
    spread = {v: run_spread(summary, v) for v in ("equal_steps", "equal_compute")}
    head = ("| step | idea | FID change at equal steps | verdict | FID change at equal compute | verdict |\n"
            "|---|---|---:|---|---:|---|\n")
    body = ""
    for st in steps_of_ladder(summary):
        cells = []
        for v in ("equal_steps", "equal_compute"):
            c = st.get(v)
            cells += [f"{c['change']:+.1f}", c["verdict"]] if c else ["—", "—"]
        label = f"{st['from']} → {st['to']}" + (" (width part)" if st["width_part"] else "")
        body += f"| {label} | {st['idea']} | {cells[0]} | {cells[1]} | {cells[2]} | {cells[3]} |\n"
    def sd(v):
        return (f"a spread of {spread[v]:.1f}, so a threshold of {2 * spread[v]:.1f}," if spread[v]
                else "spread not measured yet")
    return (head + body + f"\nA negative change is an improvement (lower FID). A change counts only when it exceeds two "
            f"seed-to-seed spreads of a single run's FID, pooled over the presets with several seeds: "
            f"{sd('equal_steps')} at equal steps, {sd('equal_compute')} at equal compute; smaller ones are within "
            "noise.\n")


def load_summary(name: str = "cpu") -> dict | None:
    """The saved summary of study ``name`` (None before its first milestone)."""
    f = study_dir(name) / "summary.json"
    return json.loads(f.read_text()) if f.is_file() else None


def progress_of(name: str = "cpu", plan: list[tuple[str, int]] | None = None) -> tuple[list, list]:
    """(finished runs, runs still to make or to finish) of the plan, as (preset, seed) pairs."""
    finished, todo = [], []
    for preset, seed in plan or PLAN:
        rec = load_run(preset, seed, name)
        ref = rec["settings"]["reference_steps"] if rec else REFERENCE_STEPS
        (finished if is_finished(rec, preset, ref) else todo).append((preset, seed))
    return finished, todo


def markdown(summary: dict) -> str:
    s = summary["settings"]

    def cell(view):
        if view is None:
            return "—", "—", "—"
        m, sd = view["fid"]
        fid = f"{m:.1f}" + ("" if sd != sd else f" ± {sd:.1f}") + f" ({view['seeds']})"
        return fid, f"{view['step']:,}", f"{view['train_seconds'] / 60:.1f}"

    head = ("| preset | GFLOP/step | FID at equal steps | steps | min | FID at equal compute | steps | min |\n"
            "|---|---:|---:|---:|---:|---:|---:|---:|\n")
    body = ""
    for r in summary["rows"]:
        a, b = cell(r.get("equal_steps")), cell(r.get("equal_compute"))
        name = f"{r['preset']} (width part)" if r.get("width_part") else r["preset"]
        body += f"| {name} | {r['train_gflops']:.1f} | {a[0]} | {a[1]} | {a[2]} | {b[0]} | {b[1]} | {b[2]} |\n"
    floor = next((r[v]["fid_floor"] for r in summary["rows"] for v in ("equal_compute", "equal_steps") if v in r), math.nan)
    e = s["eval"]
    return (head + body + f"\nFashion-FID of the EMA weights, mean ± sd over seeds (number of seeds in brackets), n = "
            f"{e['n']} samples ({e['sampler'].upper()}, {e.get('steps') or 150} steps, eta {e.get('eta', 0)}) vs "
            f"{e['n']} test images; real-vs-real floor {floor:.2f}. BatchNorm statistics of the EMA weights "
            f"{e.get('batchnorm', 'averaged')}. Equal steps: {s['reference_steps']:,} steps "
            f"each. Equal compute: {s['reference_steps']:,} steps of {s['reference']} "
            f"({budget_gflop(s['reference_steps']) / 1e3:.1f} TFLOP) each. Recipe: Adam lr {s['recipe']['lr']} "
            f"({s['recipe'].get('lr_schedule', 'constant')}), batch {s['recipe']['batch_size']}, EMA {s['recipe']['ema']} (BatchNorm statistics averaged "
            "too). Minutes: training time on the machine that made the run (median over seeds). Width parts: the width idea's "
            "three changes one at a time (upsample -> channels -> + four up convs -> + no norm after the upsampler = "
            "wide).\n")


def plot_curves(records: list[dict]):
    """FID against training steps and against training compute, one colour per rung, mean over seeds."""
    import matplotlib.pyplot as plt
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    colors = list(plt.get_cmap("tab10").colors) + ["#222222", "#a6a600"]
    for k, preset in enumerate(p for p in ORDER if any(r["preset"] == p for r in records)):
        mine = [r for r in records if r["preset"] == preset]
        steps = sorted(set.intersection(*[{p["step"] for p in r["points"]} for r in mine]))
        if not steps:
            continue
        fids = [[point_at(r, s)["fid"] for r in mine] for s in steps]
        mean = [statistics.fmean(f) for f in fids]
        tflop = [s * mine[0]["train_gflops_per_step"] / 1e3 for s in steps]
        label = f"{preset} ({len(mine)} seed{'s' if len(mine) > 1 else ''})"
        for ax, x in ((a1, steps), (a2, tflop)):
            ax.plot(x, mean, "o--" if preset in WIDTH_PARTS else "o-", color=colors[k % len(colors)], label=label, ms=3)
            if len(mine) > 1:
                lo, hi = [min(f) for f in fids], [max(f) for f in fids]
                ax.fill_between(x, lo, hi, color=colors[k % len(colors)], alpha=0.15)
    floor = records[0]["points"][0]["fid_floor"]
    for ax, xl in ((a1, "training steps (batch 128)"), (a2, "training compute (TFLOP)")):
        ax.axhline(floor, c="k", ls=":", lw=1)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(xl)
        ax.grid(alpha=0.3, which="both")
    a1.set_ylabel("Fashion-FID (EMA weights)")
    a2.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    a1.set_title("equal steps: what an idea does to the network", fontsize=9)
    a2.set_title("equal compute: what it is worth on a machine", fontsize=9)
    fig.tight_layout()
    return fig
