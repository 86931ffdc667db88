"""Helpers that keep the notebooks short: the budget banner and the rung-vs-rung comparison.

Every notebook from 02 on calls :func:`compare` to train its rung and the previous one under the
current budget (reusing runs already made), overlay their loss curves, show samples side by side
and print the checkerboard score beside the real data's.
"""
from __future__ import annotations

import os

import torch

from course_utils import plotting, reports
from course_utils.data import load
from course_utils.diffusion import sample
from course_utils.errors import CourseError
from course_utils.evaluation.metrics import checkerboard_score
from course_utils.model.unet import LADDER, build, count_params
from course_utils.paths import relative
from course_utils.study import compute
from course_utils.runs import as_variant, load_shipped, train_preset
from course_utils.system import pick_device
from course_utils.train import get_budget


def setup(seed: int = 0):
    """Print the budget and device, seed everything, and return the budget."""
    budget = get_budget()
    torch.manual_seed(seed)
    device = pick_device()
    src = "COURSE_BUDGET" if os.environ.get("COURSE_BUDGET") else "default for this machine"
    print(f"budget: {budget.name} ({src}) - {budget.description}")
    print(f"device: {device}; torch {torch.__version__}")
    return budget


def _variants(presets) -> list[tuple[str, object, object]]:
    """(label, item, config) for each item: anything :func:`course_utils.runs.as_variant` takes."""
    out = []
    for item in presets:
        label, preset, overrides, model = as_variant(item)
        config = model.config if model is not None else build(preset, **overrides).config
        out.append((label, item, config))
    return out


def compare(presets: list, budget=None, retrain: bool = False, n: int | None = None, seed: int = 0,
            show: bool = True) -> dict:
    """Train (or reuse) each preset under ``budget`` and compare them like with like.

    An item is a preset name, a preset with changed config fields, ``("wide", {"act": "gelu"})``, a UNetConfig, or
    a U-Net you built (``cu.build("optimized", act="silu")``, or with a module of your own:
    ``cu.build("wide", act=MyGELU)``). Each variant trains in its own run folder and is shown under a name like
    ``wide+act=gelu``.
    Returns {label: {"model", "history", "samples", "checkerboard", ...}} plus "real" for the test
    images' checkerboard score.
    """
    budget = get_budget(budget) if not hasattr(budget, "steps_for") else budget
    n = n or budget.samples
    variants = _variants(presets)
    labels = [label for label, _, _ in variants]
    if len(set(labels)) < len(labels):
        raise CourseError(f"compare() got the same network twice: {labels}. Fix: list each variant once.")
    # the same number of steps for every compared network
    steps = max(budget.steps_for(config) for _, _, config in variants)
    real = load("test").images[:max(n, 256)]
    cb_real = checkerboard_score(real)
    results: dict = {"real": {"checkerboard": cb_real}}
    presets = labels
    for p, item, _ in variants:
        model, hist = train_preset(item, budget, seed=seed, retrain=retrain, steps=steps)
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
        w = max(12, *(len(p) for p in presets))
        print(f"{'preset':<{w}} {'params':>10} {'steps':>6} {'s/step':>7} {'final loss':>11} {'checkerboard':>13} {'x real':>7}")
        for p in presets:
            r = results[p]
            print(f"{p:<{w}} {r['params']:>10,} {r['steps']:>6} {r['s_per_step']:>7.3f} {r['final_loss']:>11.4f} "
                  f"{r['checkerboard']:>13.4f} {r['checkerboard'] / cb_real:>7.1f}")
        print(f"{'real':<{w}} {'':>10} {'':>6} {'':>7} {'':>11} {cb_real:>13.4f} {1.0:>7.1f}")
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
        import matplotlib.pyplot as plt
        from IPython.display import display
        display(plotting.compare_grids(out))
        plt.close("all")
    return out


def rung_evidence(*presets: str, name: str = "cpu", show: bool = True) -> dict:
    """The shipped compute-aware study's evidence for a rung: ``rung_evidence("groupnorm")`` compares it with the
    rung before it on the ladder; ``rung_evidence("upsample", "wide_channels", ...)`` walks a chain of presets.

    For each step of the chain, at equal steps and at equal compute: the FID (mean ± sd over seeds), the change
    and a verdict (better / worse / within noise: a change counts when it exceeds two seed-to-seed spreads of a
    single run). With ``show``: the curves of FID against training compute and the sample grids of the runs.
    Returns {"rows": [...], "spread": {...}}."""
    if len(presets) == 1:
        if presets[0] not in LADDER[1:]:
            raise CourseError(f"{presets[0]!r} has no rung before it; name the presets to compare, e.g. "
                              "rung_evidence('upsample', 'wide').")
        presets = (LADDER[LADDER.index(presets[0]) - 1], presets[0])
    summary = compute.load_summary(name)
    rows = {r["preset"]: r for r in (summary or {}).get("rows", [])}
    missing = [p for p in presets if p not in rows or "equal_compute" not in rows[p]]
    if missing:
        print(f"The shipped study ({relative(compute.study_dir(name))}) has no finished run of {', '.join(missing)} yet. "
              f"Make it with: python -m course_utils study --only {' '.join(missing)}")
        presets = tuple(p for p in presets if p not in missing)
        if len(presets) < 2:
            return {"rows": [], "spread": {}}
    views = {"equal_steps": "equal steps", "equal_compute": "equal compute"}
    spread = {v: reports.run_spread(summary, v) for v in views}
    out = []
    for before, after in zip(presets, presets[1:]):
        row = {"from": before, "to": after}
        for v in views:
            a, b = rows[before].get(v), rows[after].get(v)
            if a and b:
                row[v] = {"before": a["fid"], "after": b["fid"], "change": b["fid"][0] - a["fid"][0],
                          "steps": (a["step"], b["step"]), "verdict": reports.verdict(a, b, spread[v])}
        out.append(row)
    if show:
        def fid(m_sd, seeds):
            m, sd = m_sd
            return f"{m:.1f}" + ("" if sd != sd else f" ± {sd:.1f}") + f" ({seeds})"
        e = summary["settings"]["eval"]
        print(f"Shipped compute-aware study ({relative(compute.study_dir(name))}): "
              f"Fashion-FID of the EMA weights, n = {e['n']}, {e['sampler'].upper()} {e.get('steps')} steps; "
              "mean ± sd (seeds)")
        print(f"{'change':<28} {'view':<14} {'steps':>13} {'before':>17} {'after':>17} {'change':>7}  verdict")
        for row in out:
            for v, label in views.items():
                if v in row:
                    r = row[v]
                    print(f"{row['from'] + ' -> ' + row['to']:<28} {label:<14} "
                          f"{r['steps'][0]:>6,}/{r['steps'][1]:<6,} {fid(r['before'], rows[row['from']][v]['seeds']):>17} "
                          f"{fid(r['after'], rows[row['to']][v]['seeds']):>17} {r['change']:>+7.1f}  {r['verdict']}")
        for v, label in views.items():
            sd = spread[v]
            print(f"seed-to-seed spread of one run at {label}: " + (f"{sd:.1f} FID (so a change beyond {2 * sd:.1f} "
                  "counts)" if sd else "not measured yet (one seed per rung)"))
        _show_evidence(presets, summary, name)
    return {"rows": out, "spread": spread}


def _show_evidence(presets, summary, name) -> None:
    """FID against training compute for ``presets`` (the other rungs faint) beside their sample grids."""
    import matplotlib.pyplot as plt
    from IPython.display import display
    from PIL import Image

    records = compute.load_all(name)
    grids = [(p, compute.samples_file(p, 0, name)) for p in presets] if len(presets) <= 4 else []
    grids = [(p, f) for p, f in grids if f.is_file()]  # (a long chain: the curves only)
    fig, axes = plt.subplots(1, 1 + len(grids), figsize=(4.2 + 2.3 * len(grids), 3.2), squeeze=False,
                             gridspec_kw={"width_ratios": [1.8] + [1] * len(grids)})
    ax = axes[0, 0]
    colors = plt.get_cmap("tab10").colors
    for p in compute.ORDER:
        mine = [r for r in records if r["preset"] == p]
        if not mine:
            continue
        steps = sorted(set.intersection(*[{q["step"] for q in r["points"]} for r in mine]))
        x = [s * mine[0]["train_gflops_per_step"] / 1e3 for s in steps]
        y = [sum(compute.point_at(r, s)["fid"] for r in mine) / len(mine) for s in steps]
        if p in presets:
            ax.plot(x, y, "o-", ms=3, color=colors[presets.index(p) % 10], label=p)
        else:
            ax.plot(x, y, "-", color="0.8", lw=1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("training compute (TFLOP)")
    ax.set_ylabel("Fashion-FID")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    ax.set_title("FID vs compute (grey: the other rungs)", fontsize=9)
    for a, (p, f) in zip(axes[0, 1:], grids):
        a.imshow(Image.open(f), cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        a.set_title(f"{p}, end of its budget", fontsize=9)
        a.axis("off")
    fig.tight_layout()
    display(fig)
    plt.close(fig)
