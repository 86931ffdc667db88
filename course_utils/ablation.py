"""The ablation study: every ladder rung and every leave-one-out variant, trained for the same number
of steps under one budget and several seeds, then measured.

``python -m course_utils ablate`` writes ``results/ablation/<budget>/``: ``results.json`` (every run),
``table.md`` (mean ± spread over seeds per preset), ``losses.png`` and ``samples.png``.
"""
from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

from . import plotting
from .checkpoints import atomic_write_text
from .data import REPO_ROOT
from .errors import CourseError
from .train import Budget, get_budget
from .unet import PRESETS, count_params, get_preset

RESULTS_DIR = REPO_ROOT / "results" / "ablation"
COLUMNS = [("fid", "FID", 2), ("kid", "KID", 4), ("checkerboard", "checkerboard", 4), ("final_loss", "final loss", 4),
           ("train_steps_per_s", "train steps/s", 2), ("confidence", "confidence", 3)]


def _spread(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else float("nan")


def summarize(runs: list[dict]) -> list[dict]:
    """Group runs by preset: mean and standard deviation over seeds of every measured column."""
    rows = []
    for name in dict.fromkeys(r["preset"] for r in runs):
        mine = [r for r in runs if r["preset"] == name]
        row = {"preset": name, "kind": mine[0]["kind"], "params": mine[0]["params"], "steps": mine[0]["steps"],
               "seeds": [r["seed"] for r in mine], "fid_floor": mine[0]["fid_floor"],
               "checkerboard_real": mine[0]["checkerboard_real"], "kid_floor": mine[0]["kid_floor"]}
        for key, _, _ in COLUMNS:
            vals = [float(r[key]) for r in mine]
            row[key] = statistics.fmean(vals)
            row[key + "_spread"] = _spread(vals)
        rows.append(row)
    return rows


def markdown_table(rows: list[dict], budget: str, n: int) -> str:
    def cell(row, key, digits):
        s = row[key + "_spread"]
        return f"{row[key]:.{digits}f}" + ("" if s != s else f" ± {s:.{digits}f}")

    head = ("| preset | kind | params | steps | " + " | ".join(label for _, label, _ in COLUMNS) + " |\n"
            "|---|---|---:|---:|" + "---:|" * len(COLUMNS) + "\n")
    body = "".join(f"| {r['preset']} | {r['kind']} | {r['params']:,} | {r['steps']} | "
                   + " | ".join(cell(r, k, d) for k, _, d in COLUMNS) + " |\n" for r in rows)
    ref = rows[0] if rows else {}
    foot = (f"\nBudget `{budget}`; mean ± standard deviation over seeds {ref.get('seeds')}; FID and KID from {n} samples "
            f"vs {n} test images. Real-vs-real at the same n: FID {ref.get('fid_floor', float('nan')):.2f}, "
            f"KID {ref.get('kid_floor', float('nan')):.4f}; checkerboard of real images "
            f"{ref.get('checkerboard_real', float('nan')):.4f}.\n")
    return head + body + foot


def ablate(budget: str | Budget | None = None, seeds: int = 2, presets: list[str] | None = None, n: int = 500,
           out: str | Path | None = None, retrain: bool = False, progress: bool = True) -> dict:
    """Train (or reuse) and evaluate every preset for ``seeds`` seeds; write the results folder."""
    from .evaluate import default_classifier, evaluate
    from .runs import train_preset

    budget = budget if isinstance(budget, Budget) else get_budget(budget)
    if seeds < 1:
        raise CourseError(f"--seeds must be at least 1, got {seeds}.")
    names = presets or list(PRESETS)
    for p in names:
        get_preset(p)
    steps = max(budget.steps_for(p) for p in names)  # like with like: every preset gets the same steps
    out = Path(out) if out else RESULTS_DIR / budget.name
    clf = default_classifier()
    runs, histories, grids = [], {}, {}
    t0 = time.perf_counter()
    for p in names:
        for seed in range(seeds):
            model, hist = train_preset(p, budget, seed=seed, retrain=retrain, steps=steps, progress=progress)
            metrics = evaluate(model, n=n, seed=seed, classifier=clf)
            runs.append({"preset": p, "kind": PRESETS[p].kind, "seed": seed, "params": count_params(model),
                         "steps": hist.steps, "final_loss": hist.final_loss(),
                         "train_steps_per_s": hist.steps / max(hist.seconds, 1e-9), **metrics})
            if seed == 0:
                histories[p] = hist
                from .diffusion import sample
                grids[p] = sample(model, 16, seed=0)
            if progress:
                print(f"{p} seed {seed}: FID {metrics['fid']:.2f} (floor {metrics['fid_floor']:.2f}), "
                      f"checkerboard {metrics['checkerboard']:.4f} (real {metrics['checkerboard_real']:.4f})")
    rows = summarize(runs)
    table = markdown_table(rows, budget.name, n)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "results.json", json.dumps({"budget": budget.name, "steps": steps, "seeds": seeds, "n": n,
                                                        "seconds": time.perf_counter() - t0, "runs": runs,
                                                        "summary": rows}, indent=1))
    atomic_write_text(out / "table.md", table)
    plotting.save(plotting.plot_losses(histories), out / "losses.png")
    plotting.save(plotting.compare_grids(grids, nrow=4, size=2.2), out / "samples.png")
    return {"rows": rows, "runs": runs, "table": table, "out": out}


def load_results(budget: str = "quick", folder: str | Path | None = None) -> dict | None:
    """The saved ablation results of ``budget`` (None if that ablation has not been run)."""
    p = Path(folder) if folder else RESULTS_DIR / budget
    f = p / "results.json"
    if not f.is_file():
        return None
    return json.loads(f.read_text())
