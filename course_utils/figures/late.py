"""Figures of the walkthroughs 06-10 (see :mod:`course_utils.figures`).

Each function draws from the course's own code, the shipped results (``results/``) or the shipped checkpoints, and
stays cheap: a few seconds on a CPU, at most 16 samples per model (DDIM, 25 steps).
"""
from __future__ import annotations

import math

import torch

from course_utils import plotting, reports
from course_utils.data import load
from course_utils.diffusion import sample
from course_utils.figures.registry import figure  # noqa: F401 - used by the figures defined below
from course_utils.lessons import noise_schedule as ns
from course_utils.lessons import residual as G
from course_utils.lessons import time_embedding as te
from course_utils.model.cost import train_gflops
from course_utils.model.unet import LADDER
from course_utils.study import compute
from course_utils.evaluation import samplers as sm
from course_utils.study import schedules as sc
from course_utils.runs import load_shipped

SCHEDULES = ("linear", "cosine", "linear_scaled", "linear_zero_snr")


def _plt():
    import matplotlib.pyplot as plt
    return plt


# --- 06 sinusoidal time embeddings --------------------------------------------------------------------------------

@figure("06_sinusoidal_embedding.png")
def sinusoidal_embedding():
    """SinusoidalEmbedding(8) of t/T and of the integer t: the features against t, and the distance between steps."""
    return te.figure()


@figure("06_off_a_straight_line.png")
def off_a_straight_line():
    """How far each of the eight features is from a straight line in t, fed with t/T and with the integer t."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 3.4), layout="constrained")
    t = torch.arange(150, dtype=torch.float64)
    design = torch.stack((torch.ones_like(t), t), 1)
    names = [f"sin f{k}" for k in range(4)] + [f"cos f{k}" for k in range(4)]
    for i, mode in enumerate(te.MODES):
        table = te.embedding_table(mode).double()
        coef = torch.linalg.lstsq(design, table).solution
        worst = (table - design @ coef).abs().max(0).values.clamp(min=1e-12)
        ax.bar([j + (i - 0.5) * 0.4 for j in range(8)], worst.tolist(), 0.4,
               label="t/T (what the U-Net uses)" if mode == "t/T" else "integer t")
    ax.set_xticks(range(8), names)
    ax.set_yscale("log")
    ax.set_ylabel("largest distance from the\nbest straight line a + b t")
    ax.axhline(1e-3, c="k", ls=":", lw=1)
    ax.set_title("features of SinusoidalEmbedding(8): only sin f0 and cos f0 of t/T bend noticeably "
                 "(dotted: 0.001)", fontsize=9)
    ax.legend(fontsize=8)
    return fig


# --- 07 residual blocks -------------------------------------------------------------------------------------------

@figure("07_gradient_norms.png")
def gradient_norms():
    """Loss gradient per block at initialization for sinusoidal, residual and optimized (one batch, one seed)."""
    return G.figure(G.compare_presets(("sinusoidal", "residual", "optimized"), x0=G.fixed_batch(32), seed=0))


# --- 08 putting it together ---------------------------------------------------------------------------------------

@figure("08_compute_per_step.png")
def compute_per_step():
    """Training GFLOP per step of each ladder rung, and the steps each gets at the study's equal compute."""
    plt = _plt()
    gflops = [train_gflops(p) for p in LADDER]
    steps = [compute.CPU.steps_for(p) for p in LADDER]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 3.6), layout="constrained")
    a1.bar(LADDER, gflops, color="tab:blue")
    a1.set_ylabel("GFLOP per training step\n(batch 128, forward + backward)")
    a1.set_title("what a step costs (FlopCounterMode)", fontsize=9)
    a2.bar(LADDER, steps, color="tab:orange")
    a2.axhline(compute.REFERENCE_STEPS, c="k", ls=":", lw=1)
    a2.set_yscale("log")
    a2.set_ylabel("training steps")
    a2.set_title(f"steps at equal compute: {compute.CPU.budget_gflop() / 1e3:.1f} TFLOP each "
                 f"(dotted: the equal-step view, {compute.REFERENCE_STEPS:,})", fontsize=9)
    for ax in (a1, a2):
        ax.tick_params(axis="x", rotation=35)
        ax.grid(alpha=0.3, axis="y")
    return fig


@figure("08_study_curves.png")
def study_curves():
    """Fashion-FID of every finished run of the compute-aware study against training steps and training compute."""
    records = compute.load_all("cpu")
    if not records:
        plt = _plt()
        fig, ax = plt.subplots(figsize=(6, 2))
        ax.text(0.5, 0.5, "results/study/cpu has no runs yet: python -m course_utils study", ha="center")
        ax.axis("off")
        return fig
    return reports.study_curves(records)


@figure("08_best_vs_final.png")
def best_vs_final():
    """16 samples each of optimized-final (original schedule) and best-cpu (zero terminal SNR, v), DDIM 25 steps."""
    grids = {}
    for name in ("optimized-final", "best-cpu"):
        found = load_shipped(name)
        if found is not None:
            grids[name] = plotting_sample(found[0])
    grids["real test images"] = load("test").images[:16]
    return plotting.compare_grids(grids, nrow=4, size=2.6)


def plotting_sample(model) -> torch.Tensor:
    """The walkthroughs' sample grid: 16 images, seed 0, DDIM with 25 steps and eta 1 (about 6x faster than DDPM)."""
    return sample(model, 16, seed=0, sampler="ddim", steps=25, eta=1.0)


# --- 09 noise schedule and sampling -------------------------------------------------------------------------------

@figure("09_schedules.png")
def schedules():
    """alpha_bar_t and log10 SNR_t of the four schedules the course compares."""
    plt = _plt()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.4), layout="constrained")
    for name, c in ns.curves().items():
        a1.plot(c["t"], c["alpha_bar"], label=name)
        a2.plot(c["t"][:-1], c["snr"][:-1].log10(), label=name)  # the zero-SNR schedule's last value is log(0)
    a1.set(xlabel="step t", ylabel="alpha_bar_t", title="share of the image's variance left")
    a2.axhline(0, ls=":", c="k", lw=1)
    a2.set(xlabel="step t", ylabel="log10 SNR_t", title="signal-to-noise ratio (dotted: SNR = 1)")
    a1.legend(fontsize=8)
    return fig


@figure("09_noised_images.png")
def noised_images():
    """Four test images noised to t = 0, 25, 50, 100, 149 under each schedule, with the same noise."""
    plt = _plt()
    ts = (0, 25, 50, 100, 149)
    strips = ns.noised(load("test").images[:4], ts=ts, seed=0)
    fig, axes = plt.subplots(len(strips), len(ts), figsize=(1.6 * len(ts), 1.7 * len(strips)))
    for r, (name, frames) in enumerate(strips.items()):
        for c, t in enumerate(ts):
            axes[r, c].imshow(plotting.to_grid(frames[c], nrow=2).numpy(), cmap="gray", vmin=0, vmax=1,
                              interpolation="nearest")
            axes[r, c].set_xticks([])
            axes[r, c].set_yticks([])
            axes[0, c].set_title(f"t = {t}", fontsize=9)
        axes[r, 0].set_ylabel(name, fontsize=8)
    fig.tight_layout()
    return fig


@figure("09_xT_mismatch.png")
def xT_mismatch():
    """x_T of 2,000 real test images under the original schedule beside N(0, I): histogram, per-pixel mean and sd."""
    plt = _plt()
    m = ns.mismatch(load("test").images[:2000], "linear", seed=0)
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2), layout="constrained")
    axes[0].hist(m["x_T"].flatten().numpy(), bins=80, density=True, alpha=0.6, label="x_T of real images (linear)")
    axes[0].hist(m["noise"].flatten().numpy(), bins=80, density=True, alpha=0.6, label="N(0, I): where sampling starts")
    axes[0].legend(fontsize=8)
    axes[0].set_title("all pixel values at t = 149", fontsize=9)
    for ax, key, title in ((axes[1], "pixel_mean", "per-pixel mean of x_T"), (axes[2], "pixel_std", "per-pixel sd of x_T")):
        im = ax.imshow(m[key][0].numpy(), cmap="coolwarm" if key == "pixel_mean" else "viridis")
        ax.set_title(title, fontsize=9)
        ax.axis("off")
        fig.colorbar(im, ax=ax, fraction=0.046)
    return fig


@figure("09_schedule_samples.png")
def schedule_samples():
    """Shipped samples of the schedule comparison (baseline, 2,000 steps, seed 0): from N(0, I), from the true q(x_T), x0 clipped."""
    import numpy as np
    from PIL import Image

    plt = _plt()
    folder = sc.schedules_dir() / "samples"
    kinds = (("", "from N(0, I)"), ("-true-start", "from the true q(x_T) (diagnostic)"), ("-clip", "x0 clipped"))
    fig, axes = plt.subplots(len(SCHEDULES), len(kinds), figsize=(3.6 * len(kinds), 2.0 * len(SCHEDULES)))
    for r, name in enumerate(SCHEDULES):
        for c, (suffix, title) in enumerate(kinds):
            ax = axes[r, c]
            f = folder / f"{name}-seed0{suffix}.png"
            if f.is_file():
                img = np.asarray(Image.open(f).convert("L"))
                ax.imshow(img, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(title, fontsize=9)
            if c == 0:
                ax.set_ylabel(name, fontsize=9)
    fig.tight_layout()
    return fig


@figure("09_samplers.png")
def samplers():
    """Fashion-FID and images/s of DDIM at K = 10, 25, 50, 150 (eta 0 and 1) against DDPM, for optimized-final."""
    import json

    f = sm.samplers_dir("optimized-final") / "results.json"
    return reports.samplers_plot(json.loads(f.read_text()))


# --- 10 classifier-free guidance ----------------------------------------------------------------------------------

@figure("10_guidance_toy.png")
def guidance_toy():
    """Guidance on a 1-D toy of two classes: p(x|c)^(1+w) / p(x)^w for w = 0, 1, 4, and the implicit classifier p(c|x)."""
    plt = _plt()
    x = torch.linspace(-4, 5, 2001, dtype=torch.float64)

    def normal(mu, sd):
        return torch.exp(-0.5 * ((x - mu) / sd) ** 2) / (sd * math.sqrt(2 * math.pi))
    p0, p1 = normal(-1.0, 0.7), normal(1.2, 0.9)
    p = 0.5 * p0 + 0.5 * p1
    dx = float(x[1] - x[0])
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 3.4), layout="constrained")
    a1.plot(x, p, c="gray", lw=1, ls="--", label="p(x): both classes")
    for w in (0.0, 1.0, 4.0):
        g = p1 ** (1 + w) / p ** w
        g = g / (g.sum() * dx)
        mean = float((g * x).sum() * dx)
        sd = float((g * (x - mean) ** 2).sum().sqrt() * dx ** 0.5)
        a1.plot(x, g, label=f"class 1, w = {w:g} (mean {mean:.2f}, sd {sd:.2f})")
    a1.set(xlabel="x", ylabel="density", title="p(x|c)^(1+w) / p(x)^w, normalized")
    a1.legend(fontsize=7)
    for w, colour in ((1.0, "tab:orange"), (4.0, "tab:green")):
        a2.plot(x, (0.5 * p1 / p) ** w, c=colour, label=f"w = {w:g}: p(c = 1 | x)^{w:g}")
    a2.set(xlabel="x", ylabel="weight", title="the implicit classifier that guidance raises to the power w")
    a2.legend(fontsize=7)
    return fig
