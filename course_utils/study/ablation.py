"""The ablation study: every ladder rung and every leave-one-out variant, trained for the same number
of steps under one budget and several seeds, then measured.

``python -m course_utils ablate`` writes ``results/ablation/<budget>/results.json`` (every run, and mean ± spread
over seeds per preset); ``course_utils.reports.write_ablation`` draws its table.md, losses.png, samples.png and
summary.png.
"""
from __future__ import annotations

import json
import shutil
import statistics
import time
from pathlib import Path

from course_utils.diffusion import sample
from course_utils.errors import CourseError
from course_utils.evaluation.bench import bench
from course_utils.evaluation.evaluate import EvalSettings, default_classifier
from course_utils.model.cost import sample_gflops_per_image, train_gflops
from course_utils.model.unet import ABLATED, PRESETS, count_params, get_preset, same_network
from course_utils.paths import results_dir
from course_utils.study.runspec import Recipe, RunSpec, metrics_of, score
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
    model, hist = spec.load()[0], spec.history()
    metrics = metrics_of(point)
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
    :func:`course_utils.evaluation.bench.bench`), not from the training runs, which other work on the machine can slow."""
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
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "results.json", json.dumps({"budget": label, "steps": steps, "seeds": seeds, "n": n,
                                                        "seconds": time.perf_counter() - t0, "runs": runs,
                                                        "bench": speed, "summary": rows}, indent=1))
    return {"rows": rows, "runs": runs, "out": out, "histories": histories, "grids": grids}


def resummarize(folder: str | Path, speed: dict | None = None) -> dict:
    """Summarize a saved ablation again without training or sampling: with the speeds measured anew (or ``speed``, a
    :func:`course_utils.evaluation.bench.bench` result); rewrites results.json."""
    folder = Path(folder)
    res = load_results(folder=folder)
    if res is None:
        raise CourseError(f"no ablation results in {folder}. Fix: run python -m course_utils ablate first.")
    speed = speed or bench(list(dict.fromkeys(r["preset"] for r in res["runs"])), **SPEED_CHECK)
    res.update(bench=speed, summary=summarize(res["runs"], speed))
    atomic_write_text(folder / "results.json", json.dumps(res, indent=1))
    return res


def load_results(budget: str = "quick", folder: str | Path | None = None) -> dict | None:
    """The saved ablation results of ``budget`` (None if that ablation has not been run)."""
    p = Path(folder) if folder else ablation_dir(budget)
    f = p / "results.json"
    if not f.is_file():
        return None
    return json.loads(f.read_text())
