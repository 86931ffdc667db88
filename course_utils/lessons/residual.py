"""Gradient flow at initialization, and the residual block's identity (notebook 07).

:func:`gradient_norms` runs one forward and backward pass of the diffusion loss on a fixed batch
and returns the gradient norm of every top-level block of the U-Net (down0, down1, ..., out) or of
every layer. :func:`compare_presets` does it for several presets built with the same seed, so the
only difference is the architecture.
"""
from __future__ import annotations

import torch
from torch import nn

from course_utils.data import load
from course_utils.diffusion import Schedule
from course_utils.errors import CourseError
from course_utils.model.blocks import ResidualConvBlock
from course_utils.model.unet import UNet, build
from course_utils.train import diffusion_loss

BLOCKS = ("down0", "down1", "down2", "dense_emb", "t_emb1", "t_emb2", "up0", "up1", "up2", "out")


def fixed_batch(n: int = 32, split: str = "train") -> torch.Tensor:
    """The first ``n`` images of a Fashion-MNIST split (no shuffling, no flips): the same batch every time."""
    if n < 1:
        raise CourseError(f"the batch needs at least one image, got n={n}.")
    return load(split).images[:n].clone()


def gradient_norms(model: nn.Module, x0: torch.Tensor, seed: int = 0, per: str = "block") -> dict[str, float]:
    """L2 norm of the loss gradient per block (``per="block"``) or per parameter tensor (``per="layer"``).

    Per block, the result also has ``first_conv``: the norm for the weight of the convolution that sees
    the image. Both have ``loss``, the loss value of that pass.

    One forward/backward pass of the diffusion loss on ``x0`` with the timesteps and noise drawn from
    ``seed``. The model is left in its mode; its gradients are cleared afterwards.
    """
    if per not in ("block", "layer"):
        raise CourseError(f"per={per!r}; choose 'block' (down0, down1, ..., out) or 'layer' (every parameter).")
    if not isinstance(model, UNet):
        raise CourseError("gradient_norms expects a course_utils.model.unet.UNet (build one with cu.build(preset)).")
    model.zero_grad(set_to_none=True)
    gen = torch.Generator().manual_seed(seed)
    loss = diffusion_loss(model, x0, Schedule.from_config(model.config), gen)
    loss.backward()
    layers = {name: p.grad.double().norm() for name, p in model.named_parameters() if p.grad is not None}
    if per == "layer":
        out = {name: float(v) for name, v in layers.items()}
    else:
        out = {}
        for block in BLOCKS:
            sq = [v ** 2 for name, v in layers.items() if name.split(".")[0] == block]
            if sq:
                out[block] = float(torch.stack(sq).sum().sqrt())
        out["first_conv"] = float(layers[first_conv_name(model)])
    out["loss"] = float(loss.detach())
    model.zero_grad(set_to_none=True)
    return out


def first_conv_name(model: UNet) -> str:
    """Name of the weight of the convolution that sees the input image."""
    return "down0.conv1.0.weight" if model.config.residual_first else "down0.0.weight"


def compare_presets(presets: list[str] | tuple[str, ...] = ("sinusoidal", "residual", "optimized"),
                    x0: torch.Tensor | None = None, seed: int = 0, n: int = 32) -> dict[str, dict[str, float]]:
    """Block gradient norms of each preset at initialization (weights drawn with ``seed``), on one fixed batch.

    Besides the blocks, each entry has ``first_conv`` (the gradient norm of the convolution that sees
    the image) and ``first_conv/out`` (its ratio to the output head's).
    """
    x0 = fixed_batch(n) if x0 is None else x0
    table = {}
    for p in presets:
        torch.manual_seed(seed)
        model = build(p).train()
        blocks = gradient_norms(model, x0, seed)
        blocks["first_conv/out"] = blocks["first_conv"] / blocks["out"]
        table[p] = blocks
    return table


def format_table(table: dict[str, dict[str, float]], digits: int = 4,
                 rows: tuple[str, ...] = BLOCKS + ("first_conv", "first_conv/out", "loss")) -> str:
    """A fixed-width text table: one row per block, one column per preset, values rounded."""
    presets = list(table)
    lines = [f"{'block':<15}" + "".join(f"{p:>12}" for p in presets)]
    for r in rows:
        lines.append(f"{r:<15}" + "".join(f"{table[p][r]:>12.{digits}f}" for p in presets))
    return "\n".join(lines)


def residual_identity(seed: int = 0, channels: int = 4, size: int = 3) -> dict:
    """A tiny ResidualConvBlock on a tiny input: out == x1 + conv2(x1), and the chain rule it implies.

    Returns the pieces, whether the identity holds bit for bit, and the largest difference between the
    Jacobian d out / d x1 and I + d conv2(x1) / d x1 (computed separately by autograd, in float64).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tensors this small are much faster on one thread (no hand-offs between cores)
    try:
        return _residual_identity(seed, channels, size)
    finally:
        torch.set_num_threads(threads)


def _residual_identity(seed: int, channels: int, size: int) -> dict:
    torch.manual_seed(seed)
    block = ResidualConvBlock(1, channels, "group", min(8, channels), "gelu").double().eval()
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(1, 1, size, size, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        x1 = block.conv1(x)
        fx1 = block.conv2(x1)
        out = block(x)
    shape = x1.shape
    n = x1.numel()
    jac_out = torch.autograd.functional.jacobian(lambda z: z + block.conv2(z), x1).reshape(n, n)
    jac_f = torch.autograd.functional.jacobian(block.conv2, x1).reshape(n, n)
    eye = torch.eye(n, dtype=torch.float64)
    # what the block would be with the second convolution switched off (weights and bias zero)
    with torch.no_grad():
        saved = [p.clone() for p in block.conv2[0].parameters()]
        for p in block.conv2[0].parameters():
            p.zero_()
        out_zeroed = block(x)
        for p, s in zip(block.conv2[0].parameters(), saved):
            p.copy_(s)
    return {
        "x": x, "x1": x1, "f_x1": fx1, "out": out, "shape": tuple(shape),
        "identity_exact": bool(torch.equal(out, x1 + fx1)),
        "jacobian_size": n,
        "jacobian_max_diff": float((jac_out - (eye + jac_f)).abs().max().detach()),
        "jacobian_f_norm": float(jac_f.norm().detach()),
        "zeroed_conv2_gives_x1": bool(torch.equal(out_zeroed, x1)),
    }


def figure(table: dict[str, dict[str, float]], rows: tuple[str, ...] = BLOCKS + ("first_conv",)):
    """Grouped bars: gradient norm per block (log scale), one colour per preset. Returns a matplotlib Figure."""
    import matplotlib.pyplot as plt

    presets = list(table)
    fig, ax = plt.subplots(figsize=(11, 3.8), layout="constrained")
    width = 0.8 / max(len(presets), 1)
    for i, p in enumerate(presets):
        xs = [j + (i - (len(presets) - 1) / 2) * width for j in range(len(rows))]
        ax.bar(xs, [table[p][r] for r in rows], width, label=p)
    ax.set_xticks(range(len(rows)), rows, rotation=30, ha="right")
    ax.set_yscale("log")
    ax.set_ylabel("gradient norm (L2)")
    ax.set_title("loss gradient per block at initialization (one batch, same seed for every preset)", fontsize=10)
    ax.legend(fontsize=8)
    return fig
