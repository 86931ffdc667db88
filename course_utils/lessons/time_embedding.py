"""What the sinusoidal time embedding looks like, measured (notebook 06).

The U-Net feeds ``t/T`` (a number in [0, 1)) to :class:`course_utils.model.blocks.SinusoidalEmbedding`
(dim 8), as the original course does. Transformer-style embeddings are usually fed the integer
position instead. This module computes both tables and measures how far apart the steps end up,
how many pairs are near-duplicates and how close each table is to a plain straight line in t.
"""
from __future__ import annotations

import torch

from course_utils.model.blocks import EmbedBlock, SinusoidalEmbedding
from course_utils.errors import CourseError
from course_utils.model.unet import T_DEFAULT

MODES = ("t/T", "integer")


def time_inputs(mode: str = "t/T", T: int = T_DEFAULT) -> torch.Tensor:
    """The numbers fed to the embedding for t = 0..T-1: t/T (the course's choice) or the integer t itself."""
    if not isinstance(T, int) or T < 2:
        raise CourseError(f"T must be an integer >= 2, got {T!r}.")
    t = torch.arange(T, dtype=torch.float32)
    if mode == "t/T":
        return t / T
    if mode == "integer":
        return t
    raise CourseError(f"unknown mode {mode!r}; choose 't/T' (what the U-Net uses) or 'integer'.")


def embedding_table(mode: str = "t/T", T: int = T_DEFAULT, dim: int = 8) -> torch.Tensor:
    """(T, dim) table: row t is SinusoidalEmbedding(dim) of t/T or of t."""
    return SinusoidalEmbedding(dim)(time_inputs(mode, T))


def pairwise_distances(table: torch.Tensor) -> torch.Tensor:
    """(T, T) Euclidean distances between the rows of ``table``."""
    return torch.cdist(table.double(), table.double())


def affine_fit_residual(table: torch.Tensor) -> float:
    """Share of the table's variance NOT explained by the best affine function a + b*t (0: a straight line).

    If this is ~0 the embedding carries no more information than t itself, because the first layer of
    the time MLP is affine.
    """
    n = table.shape[0]
    t = torch.arange(n, dtype=torch.float64)
    design = torch.stack((torch.ones(n, dtype=torch.float64), t), 1)
    y = table.double()
    coef = torch.linalg.lstsq(design, y).solution
    resid = y - design @ coef
    total = ((y - y.mean(0)) ** 2).sum()
    return float((resid ** 2).sum() / total) if total > 0 else 0.0


def principal_shares(table: torch.Tensor) -> torch.Tensor:
    """Share of variance along each principal direction of the centred table (sums to 1)."""
    centred = table.double() - table.double().mean(0)
    sv2 = torch.linalg.svdvals(centred) ** 2
    return sv2 / sv2.sum()


def summarize(mode: str = "t/T", T: int = T_DEFAULT, dim: int = 8, near: float = 0.05) -> dict:
    """Distances and shape of the embedding table for ``mode`` (see :func:`summarize_values`)."""
    return {"mode": mode, **summarize_values(time_inputs(mode, T), dim, near)}


def summarize_values(values: torch.Tensor, dim: int = 8, near: float = 0.05) -> dict:
    """Distances and shape of the table SinusoidalEmbedding(dim)(values), for evenly spaced ``values``
    (one per step, e.g. t/T, t, or 1000 * t / T).

    The distance between two steps depends only on their gap |t - s| (sin and cos of a difference).
    ``near``: two different steps closer than this (Euclidean, components lie in [-1, 1]) count as a
    near-duplicate pair.
    """
    values = torch.as_tensor(values, dtype=torch.float32).flatten()
    T = values.numel()
    if T < 3:
        raise CourseError(f"need at least 3 steps to measure distances, got {T}.")
    table = SinusoidalEmbedding(dim)(values)
    d = pairwise_distances(table)
    neighbour = d.diagonal(1)
    idx = torch.arange(T)
    gap = (idx[:, None] - idx[None, :]).abs()
    off = d.masked_fill(gap == 0, float("inf"))   # every pair of different steps
    far = d.masked_fill(gap <= 1, float("inf"))   # ... that are not neighbours
    gap_closest = 2 + int(torch.argmin(d[0, 2:]))  # the distance depends on the gap only: read it off row 0
    shares = principal_shares(table)
    args_max = (values.abs().max() * SinusoidalEmbedding(dim).frequencies()).tolist()
    return {
        "neighbour_min": float(neighbour.min()),
        "neighbour_max": float(neighbour.max()),
        "closest_pair": float(off.min()),
        "closest_nonadjacent": float(far.min()),
        "closest_nonadjacent_gap": gap_closest,
        "diameter": float(d.max()),
        "monotone_in_gap": bool((d[0, 1:] - d[0, :-1] > 0).all()),  # farther in time = farther in embedding?
        "distinct": int(torch.unique(table.double().mul(1e4).round(), dim=0).shape[0]),
        "near_duplicate_pairs": int((off < near).sum()) // 2,
        "pairs": T * (T - 1) // 2,
        "affine_residual": affine_fit_residual(table),
        "top2_share": float(shares[:2].sum()),
        "directions_over_1pct": int((shares > 0.01).sum()),
        "max_angle": args_max,  # largest angle (radians) reached by each frequency
    }


def format_summary(summaries: list[dict], digits: int = 4) -> str:
    """A text table, one column per summary (from :func:`summarize`)."""
    rows = [
        ("distance between neighbours t, t+1", lambda s: f"{s['neighbour_min']:.{digits}f}"),
        ("closest non-neighbours: distance", lambda s: f"{s['closest_nonadjacent']:.{digits}f}"),
        ("closest non-neighbours: gap |t-s|", lambda s: f"{s['closest_nonadjacent_gap']}"),
        ("largest distance", lambda s: f"{s['diameter']:.{digits}f}"),
        ("farther in time = farther apart", lambda s: f"{s['monotone_in_gap']}"),
        ("distinct rows (to 4 decimals)", lambda s: f"{s['distinct']}"),
        ("pairs closer than 0.05", lambda s: f"{s['near_duplicate_pairs']} of {s['pairs']}"),
        ("variance off a straight line in t", lambda s: f"{s['affine_residual']:.{digits}f}"),
        ("directions with > 1% of variance", lambda s: f"{s['directions_over_1pct']}"),
    ]
    names = [s.get("mode", f"#{i}") for i, s in enumerate(summaries)]
    lines = [f"{'':<36}" + "".join(f"{n:>16}" for n in names)]
    for label, fmt in rows:
        lines.append(f"{label:<36}" + "".join(f"{fmt(s):>16}" for s in summaries))
    return "\n".join(lines)


def figure(T: int = T_DEFAULT, dim: int = 8):
    """Components of the embedding against t (top) and the distance between every two steps (bottom),
    for t/T (left) and integer t (right). Returns a matplotlib Figure."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 8.5), layout="constrained")
    half = dim // 2
    colours = plt.get_cmap("viridis")(torch.linspace(0, 0.9, half).numpy())
    for col, mode in enumerate(MODES):
        table = embedding_table(mode, T, dim)
        ax = axes[0, col]
        for k in range(half):
            ax.plot(table[:, k].numpy(), color=colours[k], lw=1.4, label=f"sin, f{k}")
            ax.plot(table[:, half + k].numpy(), color=colours[k], lw=1.4, ls="--", label=f"cos, f{k}")
        ax.set_xlabel("step t")
        ax.set_ylim(-1.1, 1.1)
        ax.set_title(f"SinusoidalEmbedding({dim}) of {'t/T' if mode == 't/T' else 'the integer t'}", fontsize=10)
        if col == 0:
            ax.legend(fontsize=7, ncol=2, loc="lower left")
        d = pairwise_distances(table).numpy()
        im = axes[1, col].imshow(d, cmap="magma", origin="lower")
        axes[1, col].set_xlabel("step s")
        axes[1, col].set_ylabel("step t")
        axes[1, col].set_title(f"distance between the embeddings of t and s ({mode})", fontsize=10)
        fig.colorbar(im, ax=axes[1, col], shrink=0.8)
    return fig


def time_mlp_params(dim: int = 8, channels: tuple[int, int] = (128, 64), act: str = "gelu") -> dict:
    """Parameters of the sinusoid (none) and of the two time MLPs that follow it in the U-Net.

    ``channels`` are the widths the two embeddings are added to (c2 at 4x4, c1 at 8x8).
    """
    sinus = sum(p.numel() for p in SinusoidalEmbedding(dim).parameters())
    mlps = {f"mlp_to_{c}": sum(p.numel() for p in EmbedBlock(dim, c, act).parameters()) for c in channels}
    linear = {f"mlp_to_{c}": sum(p.numel() for p in EmbedBlock(1, c, act).parameters()) for c in channels}
    return {"sinusoid": sinus, **mlps, "mlps_total": sum(mlps.values()),
            "mlps_total_with_t/T_input": sum(linear.values())}
