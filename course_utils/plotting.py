"""Figures: sample grids, loss curves, denoising-over-time strips. Everything returns a matplotlib Figure."""
from __future__ import annotations

from pathlib import Path

import matplotlib

if not matplotlib.get_backend().lower().startswith(("module://", "nbagg", "ipympl", "widget", "inline")):
    matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

from course_utils.system import atomic_write_bytes
from course_utils.train import History


def to_grid(images: torch.Tensor, nrow: int | None = None, pad: int = 1) -> torch.Tensor:
    """(N, 1, H, W) in [-1, 1] -> one (rows*(H+pad)+pad, nrow*(W+pad)+pad) image in [0, 1] with a gray gutter
    (``torchvision.utils.make_grid``; ``nrow`` images per row, default about sqrt(N))."""
    from torchvision.utils import make_grid
    images = (images.detach().float().cpu().clamp(-1, 1) + 1) / 2
    nrow = nrow or max(1, int(round(len(images) ** 0.5)))
    return make_grid(images, nrow=nrow, padding=pad, pad_value=0.5)[0]



def save_grid_png(images: torch.Tensor, path, nrow: int = 8) -> None:
    """``images`` as a pixel-exact grayscale PNG grid (``nrow`` per row, 1-pixel gaps), written atomically."""
    import io

    from PIL import Image

    grid = (to_grid(images, nrow=nrow) * 255).round().to(torch.uint8).numpy()
    buf = io.BytesIO()
    Image.fromarray(grid, mode="L").save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())

def show_grid(images: torch.Tensor, title: str = "", nrow: int | None = None, ax=None, figsize=(4, 4)):
    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=figsize)
    ax.imshow(to_grid(images, nrow).numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_title(title, fontsize=10)
    ax.axis("off")
    return fig or ax.figure


def compare_grids(named: dict[str, torch.Tensor], nrow: int | None = None, size: float = 3.2,
                  cols: int | None = None):
    """One sample grid per name, side by side (wrapped after ``cols`` panels if given)."""
    cols = min(cols or len(named), len(named))
    rows = (len(named) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols, (size + 0.4) * rows), squeeze=False)
    for ax, (name, imgs) in zip(axes.flat, named.items()):
        show_grid(imgs, name, nrow, ax)
    for ax in list(axes.flat)[len(named):]:
        ax.axis("off")
    fig.tight_layout()
    return fig


def smooth(losses: list[float], window: int = 50) -> list[float]:
    """Exponential moving average with span ``window``, bias-corrected so the first values are not pulled to 0.

    Unlike a trailing mean of the last ``window`` values it has no cliff when the (large) first losses leave the
    window: every value's weight fades smoothly."""
    alpha, acc, norm, out = 2 / (window + 1), 0.0, 0.0, []
    for v in losses:
        acc = (1 - alpha) * acc + alpha * v
        norm = (1 - alpha) * norm + alpha
        out.append(acc / norm)
    return out


def plot_losses(histories: dict, window: int = 50, ax=None, logy: bool = True, title: str | None = None):
    """Overlay smoothed loss curves; values are History objects or lists of losses.

    The legend gives each run's mean loss over its last ``window`` steps (what the tables call final loss)."""
    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 3.5) if len(histories) <= 6 else (8.5, 3.8))
    colors = plt.get_cmap("tab10" if len(histories) <= 10 else "tab20").colors
    for k, (name, h) in enumerate(histories.items()):
        losses = h.losses if hasattr(h, "losses") else list(h)
        if not losses:
            continue
        w = max(1, min(window, len(losses) // 5 or 1))
        last = History(losses=losses).final_loss(w)
        ax.plot(range(1, len(losses) + 1), smooth(losses, w), color=colors[k % len(colors)],
                label=f"{name} (last {w}: {last:.4f})")
    ax.set_xlabel("training step")
    ax.set_ylabel("MSE loss (smoothed)")
    if logy:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title, fontsize=9)
    if len(histories) <= 6:
        ax.legend(fontsize=8)
    else:  # many curves: the legend beside the plot, not over it
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    if fig is not None:
        fig.tight_layout()
    return fig or ax.figure


def denoising_strip(frames: torch.Tensor, steps: list[int], rows: int = 4):
    """frames (F, N, 1, H, W): one row per image, one column per snapshot, labelled with its step."""
    f, n = frames.shape[:2]
    rows = min(rows, n)
    fig, axes = plt.subplots(rows, f, figsize=(0.9 * f, 0.95 * rows + 0.3), squeeze=False)
    for r in range(rows):
        for c in range(f):
            ax = axes[r][c]
            ax.imshow((frames[c, r, 0].clamp(-1, 1) + 1) / 2, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.axis("off")
            if r == 0:
                ax.set_title(f"t={steps[c]}", fontsize=8)
    fig.suptitle("denoising over time: left pure noise, right the sample", fontsize=9)
    fig.tight_layout()
    return fig


def save(fig, path: str | Path, dpi: int = 110) -> Path:
    """Save atomically (temporary file, then rename) and close the figure."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format=Path(path).suffix.lstrip(".") or "png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)
