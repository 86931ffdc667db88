"""Helpers that keep the notebooks short: the budget banner and the rung-vs-rung comparison.

Every notebook from 02 on calls :func:`compare` to train its rung and the previous one under the
current budget (reusing runs already made), overlay their loss curves, show samples side by side
and print the checkerboard score beside the real data's.
"""
from __future__ import annotations

import os

import torch

from course_utils import plotting
from course_utils.data import load
from course_utils.diffusion import sample
from course_utils.evaluation.metrics import checkerboard_score
from course_utils.study.runs import load_shipped, train_preset
from course_utils.train import get_budget, pick_device
from course_utils.model.unet import count_params


def setup(seed: int = 0):
    """Print the budget and device, seed everything, and return the budget."""
    budget = get_budget()
    torch.manual_seed(seed)
    device = pick_device()
    src = "COURSE_BUDGET" if os.environ.get("COURSE_BUDGET") else "default for this machine"
    print(f"budget: {budget.name} ({src}) - {budget.description}")
    print(f"device: {device}; torch {torch.__version__}")
    return budget


def compare(presets: list[str], budget=None, retrain: bool = False, n: int | None = None, seed: int = 0,
            show: bool = True) -> dict:
    """Train (or reuse) each preset under ``budget`` and compare them like with like.

    Returns {preset: {"model", "history", "samples", "checkerboard", ...}} plus "real" for the test
    images' checkerboard score.
    """
    budget = get_budget(budget) if not hasattr(budget, "steps_for") else budget
    n = n or budget.samples
    steps = max(budget.steps_for(p) for p in presets)  # same number of steps for every compared preset
    real = load("test").images[:max(n, 256)]
    cb_real = checkerboard_score(real)
    results: dict = {"real": {"checkerboard": cb_real}}
    for p in presets:
        model, hist = train_preset(p, budget, seed=seed, retrain=retrain, steps=steps)
        imgs = sample(model, n, seed=seed)
        results[p] = {"model": model, "history": hist, "samples": imgs, "checkerboard": checkerboard_score(imgs),
                      "params": count_params(model), "steps": hist.steps,
                      "s_per_step": hist.seconds / max(hist.steps, 1), "final_loss": hist.final_loss()}
    if show:
        from IPython.display import display
        display(plotting.plot_losses({p: results[p]["history"] for p in presets}))
        grids = {f"{p} ({results[p]['steps']} steps)": results[p]["samples"] for p in presets}
        grids["real (test split)"] = real[:n]
        display(plotting.compare_grids(grids))
        import matplotlib.pyplot as plt
        plt.close("all")
        print(f"{'preset':<12} {'params':>10} {'steps':>6} {'s/step':>7} {'final loss':>11} {'checkerboard':>13} {'x real':>7}")
        for p in presets:
            r = results[p]
            print(f"{p:<12} {r['params']:>10,} {r['steps']:>6} {r['s_per_step']:>7.3f} {r['final_loss']:>11.4f} "
                  f"{r['checkerboard']:>13.4f} {r['checkerboard'] / cb_real:>7.1f}")
        print(f"{'real':<12} {'':>10} {'':>6} {'':>7} {'':>11} {cb_real:>13.4f} {1.0:>7.1f}")
        if budget.name == "ci":
            print("(ci budget: a few steps only, so the samples are still noise; run with COURSE_BUDGET=quick.)")
    return results


def shipped_samples(presets: list[str], n: int = 16, seed: int = 0, show: bool = True) -> dict:
    """Samples from the shipped checkpoints (checkpoints/PRESET.safetensors) of the presets that have one."""
    out = {}
    cb_real = None
    for p in presets:
        found = load_shipped(p, p)
        if found is None:
            print(f"{p}: no shipped checkpoint (checkpoints/{p}.safetensors); train one with "
                  f"python -m course_utils train {p}")
            continue
        model, header = found
        imgs = sample(model, n, seed=seed)
        out[f"{p} (shipped, {header['meta'].get('step', '?')} steps)"] = imgs
        cb_real = cb_real if cb_real is not None else checkerboard_score(load("test").images[:256])
        cb = checkerboard_score(imgs)
        print(f"{p} (shipped, {header['meta'].get('step', '?')} steps): checkerboard {cb:.4f} = {cb / cb_real:.1f}x "
              f"real images' ({cb_real:.4f}); {n} samples")
    if show and out:
        from IPython.display import display
        import matplotlib.pyplot as plt
        display(plotting.compare_grids(out))
        plt.close("all")
    return out
