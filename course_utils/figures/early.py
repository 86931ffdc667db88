"""Figures of the walkthroughs 01-05 (see :mod:`course_utils.figures`).

Each one is cheap (seconds on a CPU): tiny tensors, the lessons' and widgets' own functions, at most 16 samples
from a shipped checkpoint with 25 DDIM steps, and the compute-aware study's saved results
(``results/study/cpu/``), so a figure follows the measurement when it changes.
"""
from __future__ import annotations

import numpy as np
import torch

from course_utils import plotting
from course_utils.data import load
from course_utils.diffusion import Schedule, sample
from course_utils.errors import CourseError
from course_utils.figures.registry import figure
from course_utils.lessons.group_norm import groupnorm_demo
from course_utils.lessons.rearrange_pooling import depth_to_space, maxpool_survivors, space_to_depth
from course_utils.plotting import to_grid
from course_utils.study import compute
from course_utils.runs import load_shipped
from course_utils.widgets.checkerboard import overlap_data, samples_figure
from course_utils.widgets import gelu as gelu_widget
from course_utils.widgets import rearrange_pooling as pooling_widget

SHIPPED_N = 16      # samples drawn from a shipped checkpoint
DDIM_STEPS = 25     # DDIM steps for those samples (deterministic, eta = 0)
STUDY = "cpu"       # the shipped compute-aware study the evidence figures read


# --- helpers ------------------------------------------------------------------------------------------

def _test_images(n: int | None = None) -> torch.Tensor:
    images = load("test").images
    return images if n is None else images[:n]


def _shipped(name: str):
    """(model, steps it was trained for) of the shipped checkpoint ``checkpoints/NAME.safetensors``."""
    found = load_shipped(name, name)
    if found is None:
        raise CourseError(f"no shipped checkpoint checkpoints/{name}.safetensors; regenerate the shipped "
                          "checkpoints with: python -m course_utils ship")
    model, header = found
    return model, header["meta"].get("step", "?")


def _shipped_samples(name: str, n: int = SHIPPED_N, seed: int = 0) -> tuple[torch.Tensor, object]:
    model, steps = _shipped(name)
    return sample(model, n, seed=seed, sampler="ddim", steps=DDIM_STEPS), steps


def _heat(ax, counts, title: str) -> None:
    """An integer map with its values written in the cells."""
    counts = np.asarray(counts)
    ax.imshow(counts, cmap="magma", interpolation="nearest", vmin=0)
    hi = counts.max() if counts.size else 0
    for (i, j), v in np.ndenumerate(counts):
        ax.text(j, i, str(int(v)), ha="center", va="center", fontsize=6.5,
                color="black" if v > 0.6 * hi else "white")
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def _study_evidence(presets: tuple[str, ...], title: str, grids: tuple[str, ...] = ()):
    """FID against training compute for ``presets`` (the study's other rungs in grey), beside the sample grids
    (seed 0, end of each run's compute budget) of ``grids``; both read from results/study/cpu/."""
    import matplotlib.pyplot as plt
    from PIL import Image

    records = compute.load_all(STUDY)
    if not records:
        raise CourseError(f"the study {STUDY!r} has no runs yet (results/study/{STUDY}/runs/); make them with: "
                          "python -m course_utils study")
    files = [(p, compute.samples_file(p, 0, STUDY)) for p in grids]
    files = [(p, f) for p, f in files if f.is_file()]
    fig, axes = plt.subplots(1, 1 + len(files), figsize=(5.4 + 3.6 * len(files), 3.8), squeeze=False,
                             gridspec_kw={"width_ratios": [1.5] + [1] * len(files)})
    ax = axes[0, 0]
    colors = plt.get_cmap("tab10").colors
    drawn = []
    for p in compute.ORDER:
        mine = sorted((r for r in records if r["preset"] == p), key=lambda r: r["seed"])
        for r in mine:  # one line per run (seed): a run still in progress simply ends earlier
            pts = sorted(r["points"], key=lambda q: q["step"])
            x = [q["step"] * r["train_gflops_per_step"] / 1e3 for q in pts]
            y = [q["fid"] for q in pts]
            if p in presets:
                k = presets.index(p)
                label = f"{p} (seed {r['seed']})" if len(mine) > 1 else p
                ax.plot(x, y, "o-" if r["seed"] == mine[0]["seed"] else "s--", ms=3.5, lw=1.4,
                        color=colors[k % 10], label=label)
            else:
                ax.plot(x, y, "-", color="0.82", lw=1, zorder=0)
        if mine and p in presets:
            drawn.append(p)
    missing = [p for p in presets if p not in drawn]
    ax.axvline(compute.CPU.budget_gflop() / 1e3, color="0.4", ls=":", lw=1)
    ax.set_xscale("log")
    ax.set_xlabel("training compute (TFLOP, log scale)")
    ax.set_ylabel("Fashion-FID (EMA weights, n = 500)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, title=("not run yet: " + ", ".join(missing)) if missing else None, title_fontsize=7)
    ax.set_title(title, fontsize=9)
    for a, (p, f) in zip(axes[0, 1:], files):
        a.imshow(np.asarray(Image.open(f)), cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        a.set_title(f"{p} (seed 0, EMA): end of its compute budget", fontsize=8)
        a.axis("off")
    fig.tight_layout()
    return fig


# --- 01 · baseline DDPM -----------------------------------------------------------------------------------

def _titled_grid(fig, axes, title: str, fontsize: int = 10):
    """A grid of images without axes under one title: the way the picture grids here end."""
    for ax in axes.flat:
        ax.axis("off")
    fig.suptitle(title, fontsize=fontsize)
    fig.tight_layout()
    return fig


@figure("01_forward_process.png")
def forward_process():
    """Four test images noised to steps 0..149 by q(x_t | x_0), beside the pure noise that sampling starts from."""
    import matplotlib.pyplot as plt

    sched = Schedule()
    steps = [0, 25, 50, 75, 100, 125, 149]
    imgs = _test_images(4)
    g = torch.Generator().manual_seed(1)
    fig, axes = plt.subplots(4, len(steps) + 1, figsize=(1.15 * (len(steps) + 1), 4.9))
    for c, t in enumerate(steps):
        xt = sched.q_sample(imgs, torch.full((4,), t), torch.randn(imgs.shape, generator=g))
        for r in range(4):
            axes[r][c].imshow(xt[r, 0].clamp(-1, 1), cmap="gray", vmin=-1, vmax=1, interpolation="nearest")
        axes[0][c].set_title(f"t={t}\n√ᾱ={sched.alpha_bar[t].sqrt():.2f}", fontsize=8)
    noise = torch.randn(imgs.shape, generator=g)
    for r in range(4):
        axes[r][-1].imshow(noise[r, 0].clamp(-1, 1), cmap="gray", vmin=-1, vmax=1, interpolation="nearest")
    axes[0][-1].set_title("N(0, I)\nsampling starts here", fontsize=8, color="firebrick")
    return _titled_grid(fig, axes, "q(x_t | x_0) on real test images: the last step still shows the garment")


@figure("01_loss_weights.png")
def loss_weights():
    """The schedule's signal and noise scales, and the weight each step gets in the ELBO versus in L_simple."""
    import matplotlib.pyplot as plt

    s = Schedule()
    t = np.arange(1, s.T + 1)  # the paper's numbering: code step k is t = k + 1
    ab = s.alpha_bar.double().numpy()
    beta, alpha = s.betas.double().numpy(), s.alphas.double().numpy()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10.5, 3.6))
    a1.plot(t, np.sqrt(ab), label="signal scale √ᾱ_t")
    a1.plot(t, np.sqrt(1 - ab), label="noise scale √(1-ᾱ_t)")
    cross = int(np.argmin(np.abs(ab - 0.5)))
    a1.axvline(t[cross], color="0.6", ls=":", lw=1)
    a1.annotate(f"√ᾱ_T = {np.sqrt(ab[-1]):.3f}\n(not 0: x_T is not pure noise)", (t[-1], np.sqrt(ab[-1])),
                xytext=(60, 0.15), fontsize=8, arrowprops=dict(arrowstyle="->", color="0.4"))
    a1.set_xlabel("step t (1..T)")
    a1.set_ylim(0, 1.05)
    a1.grid(alpha=0.3)
    a1.legend(fontsize=8, loc="center left")
    a1.set_title(f"linear β from {s.beta_start:g} to {s.beta_end:g}, T = {s.T}", fontsize=9)
    # ELBO weight of ||eps - eps_theta||^2 in L_{t-1}: beta_t^2 / (2 sigma_t^2 alpha_t (1 - abar_t))
    lam_beta = beta ** 2 / (2 * beta * alpha * (1 - ab))
    ab_prev = np.concatenate([[1.0], ab[:-1]])
    beta_tilde = beta * (1 - ab_prev) / (1 - ab)
    with np.errstate(divide="ignore"):
        lam_tilde = np.where(beta_tilde > 0, beta ** 2 / (2 * np.where(beta_tilde > 0, beta_tilde, 1) * alpha * (1 - ab)),
                             np.nan)
    a2.semilogy(t, lam_beta / np.mean(lam_beta), label="ELBO weight, σ_t² = β_t")
    a2.semilogy(t[1:], lam_tilde[1:] / np.nanmean(lam_tilde[1:]), label="ELBO weight, σ_t² = β̃_t (t ≥ 2)")
    a2.axhline(1.0, color="k", lw=1.2, label="L_simple: every t weighs the same")
    a2.set_xlabel("step t (1..T)")
    a2.set_ylabel("weight / its mean over t")
    a2.grid(alpha=0.3, which="both")
    a2.legend(fontsize=8)
    a2.set_title("the ELBO stresses small t; L_simple drops the weight", fontsize=9)
    fig.tight_layout()
    return fig


@figure("01_shipped_denoising.png")
def shipped_denoising():
    """The shipped baseline checkpoint denoising pure noise (25 DDIM steps), snapshots left to right."""
    model, steps = _shipped("baseline")
    _, frames, frame_steps = sample(model, n=4, seed=0, frames=9, sampler="ddim", steps=DDIM_STEPS)
    fig = plotting.denoising_strip(frames, frame_steps, rows=4)
    fig.suptitle(f"shipped baseline ({steps} training steps), {DDIM_STEPS} DDIM steps: pure noise (left) to sample "
                 "(right)", fontsize=9)
    return fig


# --- 02 · checkerboard artifacts -----------------------------------------------------------------------------

@figure("02_overlap_maps.png")
def overlap_maps():
    """Overlap counts on a constant input: k=3/s=2 once and stacked twice, k=2/s=2, and resize-then-convolve."""
    import matplotlib.pyplot as plt

    one = overlap_data(3, 2, 1, layers=1, n=6)
    two = overlap_data(3, 2, 1, layers=2, n=3)
    fix = overlap_data(2, 2, 0, layers=1, n=6)
    fig, axes = plt.subplots(1, 4, figsize=(15, 4.1))
    _heat(axes[0], one["counts"], f"baseline ConvTranspose2d(k=3, s=2, p=1, op=1)\n6x6 -> 12x12; interior "
                                  f"{{{', '.join(map(str, one['interior_values']))}}}, unevenness {one['unevenness']:g}")
    _heat(axes[1], two["counts"], f"the same layer stacked twice (3x3 -> 12x12)\ninterior "
                                  f"{{{', '.join(map(str, two['interior_values']))}}}, unevenness {two['unevenness']:g}")
    _heat(axes[2], fix["counts"], f"upsample rung: ConvTranspose2d(k=2, s=2)\nevery pixel covered once, "
                                  f"unevenness {fix['unevenness']:g}")
    _heat(axes[3], one["resize_counts"], f"nearest resize x2, then Conv2d(3x3, p=1)\ninterior all "
                                         f"{one['resize_counts'][5, 5]}, only the border is lower")
    fig.suptitle("how many kernel stamps land on each output pixel (every weight 1, constant input)", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    return fig


@figure("02_shipped_spectra.png")
def shipped_spectra():
    """Samples of the shipped baseline and upsample checkpoints beside real images, with their mean spectra."""
    base, sb = _shipped_samples("baseline")
    upsa, su = _shipped_samples("upsample")
    fig = samples_figure({f"baseline ({sb} steps)": base, f"upsample ({su} steps)": upsa,
                          "real": _test_images(SHIPPED_N)})
    fig.suptitle(f"shipped checkpoints, {SHIPPED_N} samples each ({DDIM_STEPS} DDIM steps, seed 0)", fontsize=10)
    fig.tight_layout()
    return fig


@figure("02_study_upsample.png")
def study_upsample():
    """The compute-aware study's FID-vs-compute curves for baseline and upsample, beside their samples."""
    return _study_evidence(("baseline", "upsample"), "the upsampler fix (shipped study, results/study/cpu)",
                           grids=("baseline", "upsample"))


# --- 03 · GroupNorm ---------------------------------------------------------------------------------------

@figure("03_groupnorm_groups.png")
def groupnorm_groups():
    """Which channels nn.GroupNorm(num_groups, num_channels) normalizes together, for six settings."""
    import matplotlib.pyplot as plt

    settings = [(1, 16), (2, 16), (8, 16), (16, 16), (8, 64), (32, 64)]
    fig, axes = plt.subplots(len(settings), 1, figsize=(10, 0.72 * len(settings) + 0.6))
    cmap = plt.get_cmap("tab20")
    for ax, (g, c) in zip(axes, settings):
        d = groupnorm_demo(g, c)
        for k, members in enumerate(d["groups"]):
            ax.barh(0, len(members), left=members[0], color=cmap(k % 20), edgecolor="white", lw=0.6)
            if len(d["groups"]) <= 16:
                ax.text(members[0] + len(members) / 2, 0, str(k), ha="center", va="center", fontsize=7)
        ax.set_xlim(0, c)
        ax.set_yticks([])
        ax.set_xticks([0, c // 2, c])
        ax.tick_params(labelsize=7)
        ax.set_ylabel(f"GroupNorm({g}, {c})", rotation=0, ha="right", va="center", fontsize=8)
        ax.set_title(f"{g} group{'s' * (g > 1)} of {d['channels_per_group']} consecutive channel"
                     f"{'s' * (d['channels_per_group'] > 1)}", fontsize=8, loc="right", pad=2)
    axes[-1].set_xlabel("channel index (one colour per group; the number is the group's index)")
    fig.suptitle("nn.GroupNorm(num_groups, num_channels): the first argument counts groups", fontsize=10)
    fig.tight_layout()
    return fig


@figure("03_batch_dependence.png")
def batch_dependence():
    """One T-shirt normalized alone, among seven sandals and among seven pullovers: BatchNorm (train) vs GroupNorm."""
    import matplotlib.pyplot as plt
    from torch import nn

    test = load("test")

    def first(label, k):
        return test.images[(test.labels == label).nonzero()[:k, 0]]

    tshirt, sandals, pullovers = first(0, 1), first(5, 7), first(2, 7)
    batches = {"alone": tshirt, "with 7 sandals": torch.cat([tshirt, sandals]),
               "with 7 pullovers": torch.cat([tshirt, pullovers])}
    bn, gn = nn.BatchNorm2d(1).train(), nn.GroupNorm(1, 1)
    fig, axes = plt.subplots(3, 3, figsize=(8.4, 8.2))
    with torch.no_grad():
        outs = {name: (bn(x)[0, 0], gn(x)[0, 0]) for name, x in batches.items()}
    lim = max(float(max(o[0].abs().max(), o[1].abs().max())) for o in outs.values())
    for col, (name, x) in enumerate(batches.items()):
        axes[0][col].imshow(to_grid(x, nrow=4).numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        axes[0][col].set_title(f"batch: T-shirt {name}", fontsize=9)
        for row, (out, label) in enumerate(zip(outs[name], ("BatchNorm2d, train mode", "GroupNorm(1, 1)")), start=1):
            axes[row][col].imshow(out, cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
            axes[row][col].set_title(f"{label}\nT-shirt's output: mean {round(float(out.mean()), 2) + 0.0:+.2f}", fontsize=8)
    return _titled_grid(fig, axes, "the same T-shirt, three batches: BatchNorm's output depends on the batchmates, "
                        "GroupNorm's does not", fontsize=9)


@figure("03_study_width_groupnorm.png")
def study_width_groupnorm():
    """The compute-aware study's FID-vs-compute curves for upsample, the width parts, wide and groupnorm."""
    return _study_evidence(("upsample", "wide_channels", "wide_upconvs", "wide", "groupnorm"),
                           "width, then GroupNorm (shipped study, results/study/cpu)", grids=("wide", "groupnorm"))


# --- 04 · GELU ------------------------------------------------------------------------------------------------

@figure("04_activations.png")
def activations():
    """The activation explorer's static picture: GELU (exact and tanh), ReLU and SiLU, values and derivatives."""
    return gelu_widget.static_figure()


@figure("04_study_gelu.png")
def study_gelu():
    """The compute-aware study's FID-vs-compute curves for groupnorm and gelu, beside their samples."""
    return _study_evidence(("groupnorm", "gelu"), "GELU (shipped study, results/study/cpu)", grids=("groupnorm", "gelu"))


# --- 05 · rearrange pooling -----------------------------------------------------------------------------------

@figure("05_rearrange_explorer.png")
def rearrange_explorer():
    """The rearrange explorer's static picture on a labelled 6x6 input: where each pixel goes, and MaxPool's picks."""
    return pooling_widget.static_figure(size=6, channels=1, p1=2, p2=2)


@figure("05_pooling_a_real_image.png")
def pooling_a_real_image():
    """A real test image through MaxPool2d(2) and through space-to-depth (four 8x8 channels), and back."""
    import matplotlib.pyplot as plt
    from torch import nn

    x = _test_images(1)
    y = space_to_depth(x, 2, 2)
    back = depth_to_space(y, 2, 2)
    pooled = nn.MaxPool2d(2)(x)
    kept = maxpool_survivors(x)[0, 0].float()
    fig, axes = plt.subplots(2, 4, figsize=(9.6, 6.6))
    show = dict(cmap="gray", vmin=-1, vmax=1, interpolation="nearest")
    axes[0][0].imshow(x[0, 0], **show)
    axes[0][0].set_title("input 16x16", fontsize=9)
    axes[0][1].imshow(pooled[0, 0], **show)
    axes[0][1].set_title("MaxPool2d(2): 8x8\n(1 of every 4 values)", fontsize=9)
    axes[0][2].imshow(kept, cmap="Reds", vmin=0, vmax=1, interpolation="nearest")
    axes[0][2].set_title(f"the {int(kept.sum())} of {x.numel()} pixels\nMaxPool keeps (the only ones\nthat receive a gradient)", fontsize=9)
    axes[0][3].imshow(back[0, 0], **show)
    axes[0][3].set_title(f"PixelShuffle(space-to-depth(x))\nequal to x: {torch.equal(back, x)}", fontsize=9)
    names = ["top-left", "top-right", "bottom-left", "bottom-right"]
    for k in range(4):
        axes[1][k].imshow(y[0, k], **show)
        axes[1][k].set_title(f"space-to-depth channel {k}\n({names[k]} pixel of each patch)", fontsize=8)
    return _titled_grid(fig, axes, "rearrange keeps all 256 values in 4 channels of 8x8; MaxPool keeps 64 of them")


@figure("05_study_rearrange.png")
def study_rearrange():
    """The compute-aware study's FID-vs-compute curves for gelu and rearrange, beside their samples."""
    return _study_evidence(("gelu", "rearrange"), "rearrange pooling (shipped study, results/study/cpu)",
                           grids=("gelu", "rearrange"))
