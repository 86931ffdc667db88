"""The ablation study: every ladder rung and every leave-one-out variant, trained for the same number
of steps under one budget and several seeds, then measured.

``python -m course_utils ablate`` writes ``results/ablation/<budget>/``: ``results.json`` (every run),
``table.md`` (mean ± spread over seeds per preset), ``losses.png``, ``samples.png`` and ``summary.png``.
"""
from __future__ import annotations

import json
import math
import shutil
import statistics
import time
from pathlib import Path

from course_utils import plotting
from course_utils.diffusion import sample
from course_utils.errors import CourseError
from course_utils.evaluation.evaluate import default_classifier
from course_utils.model.cost import sample_gflops_per_image, train_gflops
from course_utils.model.unet import ABLATED, PRESETS, count_params, get_preset, same_network
from course_utils.paths import results_dir
from course_utils.study.bench import bench
from course_utils.study.runspec import EvalSettings, Recipe, RunSpec, score
from course_utils.system import atomic_write_text
from course_utils.train import History, get_budget

COLUMNS = [("fid", "FID", 2), ("kid", "KID", 4), ("checkerboard", "checkerboard", 4), ("final_loss", "final loss", 4),
           ("train_steps_per_s", "train steps/s", 2), ("sample_images_per_s", "sample img/s", 1),
           ("confidence", "confidence", 3)]


# Speeds are summarized by the best seed, not the mean: other work on a shared machine only ever slows a run down,
# so the fastest of the repeats is the least disturbed measurement (the reason timeit reports the minimum time).
BEST_OF_SEEDS = {"train_steps_per_s", "sample_images_per_s"}
# the benchmark behind the speed columns: 5 rounds over all presets, 3 training steps and 8 samples per preset and round
SPEED_CHECK = {"repeats": 5, "steps": 3, "samples": 8}


def ablation_dir(budget: str) -> Path:
    """``results/ablation/<budget>``: where the ablation of ``budget`` is written."""
    return results_dir() / "ablation" / budget


def _spread(values: list[float]) -> float:
    if len(values) < 2 or any(v != v for v in values):
        return float("nan")
    return statistics.stdev(values)


def _cost(name: str) -> dict:
    """GFLOP of a 128-image training step and of one sampled image (150 steps), for a known preset."""
    if name not in PRESETS:
        return {}
    return {"train_gflops": round(train_gflops(name), 3), "sample_gflops_per_image": round(sample_gflops_per_image(name), 4)}


def summarize(runs: list[dict], speed: dict | None = None) -> list[dict]:
    """Group runs by preset: mean and standard deviation over seeds of every measured column (speeds: the best seed)."""
    rows = []
    measured = {b["name"]: b for b in speed["presets"]} if speed is not None else {}
    for name in dict.fromkeys(r["preset"] for r in runs):
        mine = [r for r in runs if r["preset"] == name]
        row = {"preset": name, "kind": mine[0]["kind"], "params": mine[0]["params"], "steps": mine[0]["steps"],
               **_cost(name), "seeds": [r["seed"] for r in mine], "fid_floor": mine[0]["fid_floor"],
               "checkerboard_real": mine[0]["checkerboard_real"], "kid_floor": mine[0]["kid_floor"],
               "same_network_as": mine[0].get("same_network_as")}
        for key, _, _ in COLUMNS:
            vals = [float(r.get(key, float("nan"))) for r in mine]  # nan: a column older results lack
            if key in BEST_OF_SEEDS and speed is not None:
                row[key] = float(measured[name][key]) if name in measured else float("nan")
                row[key + "_spread"] = float("nan")
            elif key in BEST_OF_SEEDS:
                row[key], row[key + "_spread"] = (max(vals) if all(v == v for v in vals) else float("nan")), float("nan")
            else:
                row[key] = statistics.fmean(vals)
                row[key + "_spread"] = _spread(vals)
        rows.append(row)
    return rows


def markdown_table(rows: list[dict], budget: str, n: int, speed: dict | None = None) -> str:
    def cell(row, key, digits):
        s = row[key + "_spread"]
        return f"{row[key]:.{digits}f}" + ("" if s != s else f" ± {s:.{digits}f}")

    flops = bool(rows) and all("train_gflops" in r for r in rows)  # the cost of each step, beside its measured speed
    head = ("| preset | kind | params | steps | " + ("GFLOP/step | GFLOP/image | " if flops else "")
            + " | ".join(label for _, label, _ in COLUMNS) + " |\n"
            "|---|---|---:|---:|" + ("---:|---:|" if flops else "") + "---:|" * len(COLUMNS) + "\n")
    body = "".join(f"| {r['preset']} | {r['kind']}"
                   + (f" (the same network as {r['same_network_as']}: its runs)" if r.get("same_network_as") else "")
                   + f" | {r['params']:,} | {r['steps']} | "
                   + (f"{r['train_gflops']:.1f} | {r['sample_gflops_per_image']:.2f} | " if flops else "")
                   + " | ".join(cell(r, k, d) for k, _, d in COLUMNS) + " |\n" for r in rows)
    ref = rows[0] if rows else {}
    foot = (f"\nBudget `{budget}`; mean ± standard deviation over seeds {ref.get('seeds')}; FID and KID from {n} samples "
            f"vs {n} test images; " + (f"the speeds are medians of {speed['presets'][0]['repeats']} rounds of a short benchmark that goes round all presets, on {speed['device']} with {speed['threads']} threads (train: batch 128; sampling: {speed['presets'][0]['sample_n']} images, 150 steps)." if speed and speed.get("presets") else "the speeds are the best of the seeds' training and evaluation runs (other work on the machine only slows a run down).") + f" Real-vs-real at the same n: FID {ref.get('fid_floor', float('nan')):.2f}, "
            f"KID {ref.get('kid_floor', float('nan')):.4f}; checkerboard of real images "
            f"{ref.get('checkerboard_real', float('nan')):.4f}."
            + (" GFLOP/step: a 128-image training step, forward and backward; GFLOP/image: one sample, 150 steps "
               "(torch.utils.flop_counter)." if flops else "") + "\n")
    return head + body + foot


def ablation_spec(preset: str, steps: int, seed: int) -> RunSpec:
    """One run of the ablation: ``preset`` for ``steps`` steps, seed ``seed``, no EMA (the shipped ladder)."""
    return RunSpec.of(preset, steps, seed, Recipe(ema=None))


def ablation_eval(n: int, seed: int) -> EvalSettings:
    """How an ablation run is scored: ``n`` DDPM samples drawn with ``seed``, BatchNorm's running statistics."""
    return EvalSettings(n=n, sampler="ddpm", steps=None, eta=0.0, batchnorm="running", seed=seed)


def _one_run(p: str, steps: int, seed: int, n: int, clf, retrain: bool, progress: bool) -> tuple[dict, History]:
    spec = ablation_spec(p, steps, seed)
    if retrain and spec.folder.exists():
        shutil.rmtree(spec.folder)
    point = score(spec, ablation_eval(n, seed), classifier=clf, progress=progress)
    model, header = spec.load()
    meta = header["meta"]
    hist = History(losses=meta.get("losses", []), seconds=meta.get("seconds", 0.0), steps=meta["step"])
    metrics = {k: v for k, v in point.items() if k not in ("step", "finished", "lr_fraction", "train_seconds", "loss",
                                                           "eval_seconds", "weights", "eval")}
    run = {"preset": p, "kind": PRESETS[p].kind, "seed": seed, "params": count_params(model), "steps": hist.steps,
           "final_loss": hist.final_loss(), "train_steps_per_s": hist.steps / max(hist.seconds, 1e-9),
           "sample_images_per_s": n / max(point["eval_seconds"], 1e-9), "train_seconds": hist.seconds, **metrics}
    return run, hist


def ablate(budget: str | None = None, seeds: int = 2, presets: list[str] | None = None, n: int = 500,
           out: str | Path | None = None, retrain: bool = False, progress: bool = True, speed_check: bool = True,
           steps: int | None = None) -> dict:
    """Train (or reuse) and evaluate every preset for ``seeds`` seeds, all for the same ``steps`` (default: the
    longest of ``budget``'s steps for them); write the results folder (default ``results/ablation/<budget>``, or
    ``results/ablation/ladder`` for given steps).

    The speed columns come from a short benchmark of every preset at the end (medians of 5 rounds,
    :func:`course_utils.study.bench.bench`), not from the training runs, which other work on the machine can slow."""
    if seeds < 1:
        raise CourseError(f"--seeds must be at least 1, got {seeds}.")
    names = presets or list(ABLATED)
    for p in names:
        get_preset(p)
    label = get_budget(budget).name if steps is None else "ladder"
    steps = steps or max(get_budget(budget).steps_for(p) for p in names)  # like with like: the same steps for all
    out = Path(out) if out else ablation_dir(label)
    clf = default_classifier()
    runs, histories, grids = [], {}, {}
    t0 = time.perf_counter()
    twins = same_network(names)  # no_extra_skip is the same network as residual
    for p in names:
        twin = twins[p]
        if twin != p:
            runs += [{**r, "preset": p, "kind": PRESETS[p].kind, "same_network_as": twin} for r in runs
                     if r["preset"] == twin]
            histories[p], grids[p] = histories[twin], grids[twin]
            if progress:
                print(f"{p}: the same network as {twin} (same config, seeds and steps): reusing its runs")
            continue
        for seed in range(seeds):
            run, hist = _one_run(p, steps, seed, n, clf, retrain, progress)
            runs.append(run)
            if seed == 0:
                histories[p], grids[p] = hist, sample(ablation_spec(p, steps, 0).load()[0], 16, seed=0)
            if progress:
                print(f"{p} seed {seed}: FID {run['fid']:.2f} (floor {run['fid_floor']:.2f}), "
                      f"checkerboard {run['checkerboard']:.4f} (real {run['checkerboard_real']:.4f})")
    speed = bench(names, **SPEED_CHECK) if speed_check else None
    rows = summarize(runs, speed)
    table = markdown_table(rows, label, n, speed)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "results.json", json.dumps({"budget": label, "steps": steps, "seeds": seeds, "n": n,
                                                        "seconds": time.perf_counter() - t0, "runs": runs,
                                                        "bench": speed, "summary": rows}, indent=1))
    atomic_write_text(out / "table.md", table)
    plotting.save(plot_loss_panels(histories), out / "losses.png")
    plotting.save(plotting.compare_grids(grids, nrow=4, size=2.2, cols=6), out / "samples.png")
    plotting.save(plot_summary(rows), out / "summary.png")
    return {"rows": rows, "runs": runs, "table": table, "out": out}


def load_results(budget: str = "quick", folder: str | Path | None = None) -> dict | None:
    """The saved ablation results of ``budget`` (None if that ablation has not been run)."""
    p = Path(folder) if folder else ablation_dir(budget)
    f = p / "results.json"
    if not f.is_file():
        return None
    return json.loads(f.read_text())


def difference(a: dict, b: dict, key: str = "fid") -> dict:
    """``b[key] - a[key]`` (two summary rows) with their combined seed spread and a rough verdict.

    The verdict calls a difference *clear* when it exceeds twice the combined standard deviation
    sqrt(sd_a^2 + sd_b^2); with two seeds per preset that spread is itself a rough estimate.
    """
    diff = b[key] - a[key]
    sa, sb = a.get(key + "_spread", float("nan")), b.get(key + "_spread", float("nan"))
    spread = math.sqrt((0 if sa != sa else sa) ** 2 + (0 if sb != sb else sb) ** 2)
    clear = abs(diff) > 2 * spread
    return {"diff": diff, "spread": spread, "clear": clear,
            "verdict": ("lower" if diff < 0 else "higher") if clear else "within seed noise"}


def ladder_steps(rows: list[dict], key: str = "fid") -> list[dict]:
    """For each ladder rung after the first: the change of ``key`` from the rung before."""
    by = {r["preset"]: r for r in rows}
    ladder = [r for r in rows if r["kind"] == "ladder"]
    out = []
    for prev, cur in zip(ladder, ladder[1:]):
        d = difference(prev, cur, key)
        out.append({"from": prev["preset"], "to": cur["preset"], "idea": PRESETS[cur["preset"]].idea,
                    "before": by[prev["preset"]][key], "after": cur[key], **d})
    return out


def leave_one_out(rows: list[dict], key: str = "fid", reference: str = "optimized") -> list[dict]:
    """For each leave-one-out preset: ``key`` without the idea minus ``key`` of the full model.

    A positive FID difference means the model is worse without the idea, i.e. the idea helps.
    """
    by = {r["preset"]: r for r in rows}
    if reference not in by:
        raise CourseError(f"the ablation has no {reference!r} row to compare the leave-one-out presets with.")
    out = []
    for r in rows:
        if r["kind"] == "leave-one-out":
            d = difference(by[reference], r, key)
            out.append({"preset": r["preset"], "idea": PRESETS[r["preset"]].idea, "without": r[key],
                        "with": by[reference][key], **d})
    return sorted(out, key=lambda x: -x["diff"])


def plot_loss_panels(histories: dict, reference: str = "optimized"):
    """Seed 0's loss curves: the ladder rungs on the left, the leave-one-out presets (and ``reference``) on the right."""
    import matplotlib.pyplot as plt
    ladder = {p: h for p, h in histories.items() if PRESETS[p].kind == "ladder"}
    loo = {p: h for p, h in histories.items() if PRESETS[p].kind != "ladder"}
    if reference in histories and loo:
        loo = {reference: histories[reference], **loo}
    panels = [(t, h) for t, h in (("ladder rungs", ladder), ("leave one out", loo)) if h]
    fig, axes = plt.subplots(1, len(panels), figsize=(7.5 * len(panels), 3.8), squeeze=False, sharey=True)
    for ax, (title, hs) in zip(axes[0], panels):
        plotting.plot_losses(hs, ax=ax, title=f"{title} (seed 0)")
    fig.tight_layout()
    return fig


def plot_summary(rows: list[dict]):
    """Bar charts of FID (mean ± sd over seeds, floor dashed) and checkerboard / real per preset."""
    import matplotlib.pyplot as plt
    names = [r["preset"] for r in rows]
    colors = ["tab:blue" if r["kind"] == "ladder" else "tab:orange" for r in rows]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 3.8))
    x = range(len(rows))
    a1.bar(x, [r["fid"] for r in rows], yerr=[0 if r["fid_spread"] != r["fid_spread"] else r["fid_spread"]
                                               for r in rows], color=colors, capsize=3)
    a1.axhline(rows[0]["fid_floor"], ls="--", c="k", lw=1, label="real vs real (floor)")
    a1.set_ylabel("Fashion-FID (lower is better)")
    a1.legend(fontsize=8)
    ratio = [r["checkerboard"] / r["checkerboard_real"] for r in rows]
    a2.bar(x, ratio, color=colors)
    a2.axhline(1, ls="--", c="k", lw=1, label="real images")
    a2.axhline(2, ls=":", c="tab:red", lw=1, label="2x real")
    a2.set_yscale("log")
    a2.set_ylabel("checkerboard score / real images'")
    a2.legend(fontsize=8)
    for ax in (a1, a2):
        ax.set_xticks(list(x), names, rotation=60, ha="right", fontsize=8)
    a1.set_title("blue: ladder rungs, orange: optimized minus one idea", fontsize=9)
    fig.tight_layout()
    return fig


def refresh(folder: str | Path, speed: dict | None = None) -> dict:
    """Re-summarize a saved ablation without training or sampling again: measure the speeds anew (or take
    ``speed``, a :func:`course_utils.study.bench.bench` result) and rewrite results.json, table.md and summary.png."""
    folder = Path(folder)
    res = load_results(folder=folder)
    if res is None:
        raise CourseError(f"no ablation results in {folder}. Fix: run python -m course_utils ablate first.")
    names = list(dict.fromkeys(r["preset"] for r in res["runs"]))
    speed = speed or bench(names, **SPEED_CHECK)
    rows = summarize(res["runs"], speed)
    res.update(bench=speed, summary=rows)
    atomic_write_text(folder / "results.json", json.dumps(res, indent=1))
    atomic_write_text(folder / "table.md", markdown_table(rows, res["budget"], res["n"], speed))
    plotting.save(plot_summary(rows), folder / "summary.png")
    return res
