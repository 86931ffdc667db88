"""Rearrange pooling (space-to-depth) versus MaxPool, as measured in notebook 05.

Everything here is a pure function of its arguments:

* :func:`labelled_grid` makes an input whose values are their own flat indices, so after any
  rearrangement every number says where it came from;
* :func:`space_to_depth` / :func:`depth_to_space` are the rearrange ``b c (h p1) (w p2) -> b (c p1 p2) h w``
  and its inverse; :func:`source_map` lists, for every output (channel, row, col), the input
  (channel, row, col) it holds;
* :func:`maxpool_survivors` marks the one pixel of each window that MaxPool keeps;
* :func:`pooling_param_cost` and :func:`block_not_invertible` show what the *block*
  (:class:`course_utils.model.blocks.RearrangePool`: rearrange, then a 4C -> C convolution) costs and loses.
"""
from __future__ import annotations

import einops
import torch
from torch import nn

from course_utils.model.blocks import RearrangePool
from course_utils.errors import CourseError

PATTERN = "b c (h p1) (w p2) -> b (c p1 p2) h w"
INVERSE = "b (c p1 p2) h w -> b c (h p1) (w p2)"


def _check_factors(h: int, w: int, p1: int, p2: int) -> None:
    for name, p in (("p1", p1), ("p2", p2)):
        if not isinstance(p, int) or isinstance(p, bool) or p < 1:
            raise CourseError(f"{name} must be a positive integer, got {p!r}.")
    if h % p1 or w % p2:
        bad = []
        if h % p1:
            bad.append(f"height {h} is not divisible by p1={p1}")
        if w % p2:
            bad.append(f"width {w} is not divisible by p2={p2}")
        raise CourseError(f"cannot rearrange a {h}x{w} image into {p1}x{p2} patches: {' and '.join(bad)}. "
                          f"Fix: pick p1 from the divisors of {h} ({_divisors(h)}) and p2 from those of "
                          f"{w} ({_divisors(w)}), or resize the image.")


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def check_rearrange(h: int, w: int, p1: int, p2: int) -> str | None:
    """None if a ``h`` x ``w`` image can be cut into ``p1`` x ``p2`` patches, else the reason (a sentence)."""
    try:
        _check_factors(h, w, p1, p2)
    except CourseError as err:
        return str(err)
    return None


def labelled_grid(channels: int = 1, h: int = 4, w: int | None = None, batch: int = 1) -> torch.Tensor:
    """A (batch, channels, h, w) int64 tensor whose value at (c, r, col) is its flat index c*h*w + r*w + col."""
    w = h if w is None else w
    if min(channels, h, w, batch) < 1:
        raise CourseError(f"labelled_grid needs positive sizes, got channels={channels}, h={h}, w={w}, batch={batch}.")
    n = channels * h * w
    return torch.arange(batch * n).view(batch, channels, h, w) % n


def index_to_label(index: int, channels: int, h: int, w: int) -> tuple[int, int, int]:
    """The (channel, row, col) of a flat index of a (channels, h, w) grid."""
    if not 0 <= index < channels * h * w:
        raise CourseError(f"index {index} is outside a {channels}x{h}x{w} grid (0..{channels * h * w - 1}).")
    c, rest = divmod(int(index), h * w)
    r, col = divmod(rest, w)
    return c, r, col


def space_to_depth(x: torch.Tensor, p1: int = 2, p2: int = 2) -> torch.Tensor:
    """The bare rearrange of rearrange pooling: (B, C, H, W) -> (B, C*p1*p2, H/p1, W/p2). No parameters."""
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise CourseError(f"space_to_depth needs a 4-D tensor (batch, channels, height, width), got "
                          f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}.")
    _check_factors(x.shape[2], x.shape[3], p1, p2)
    return einops.rearrange(x, PATTERN, p1=p1, p2=p2)


def depth_to_space(y: torch.Tensor, p1: int = 2, p2: int = 2) -> torch.Tensor:
    """The inverse rearrange: (B, C*p1*p2, h, w) -> (B, C, h*p1, w*p2)."""
    if not isinstance(y, torch.Tensor) or y.ndim != 4:
        raise CourseError("depth_to_space needs a 4-D tensor (batch, channels, height, width).")
    if y.shape[1] % (p1 * p2):
        raise CourseError(f"depth_to_space: {y.shape[1]} channels cannot be split into groups of p1*p2={p1 * p2}.")
    return einops.rearrange(y, INVERSE, p1=p1, p2=p2)


def source_map(channels: int = 1, h: int = 4, w: int | None = None, p1: int = 2, p2: int = 2) -> torch.Tensor:
    """For every output (channel k, row i, col j) of the rearrange, the input (channel, row, col) it holds.

    Returns an int64 tensor of shape (C*p1*p2, h/p1, w/p2, 3). Output channel k = c*p1*p2 + a*p2 + b holds
    input channel c at rows a, a+p1, a+2*p1, ... and columns b, b+p2, ...
    """
    w = h if w is None else w
    _check_factors(h, w, p1, p2)
    y = space_to_depth(labelled_grid(channels, h, w), p1, p2)[0]
    c, rest = y // (h * w), y % (h * w)
    return torch.stack((c, rest // w, rest % w), dim=-1)


def matches_pixel_unshuffle(x: torch.Tensor, p: int = 2) -> bool:
    """True if the rearrange with p1 = p2 = p equals ``nn.PixelUnshuffle(p)`` exactly on ``x``."""
    return torch.equal(space_to_depth(x, p, p), nn.PixelUnshuffle(p)(x))


def round_trip_exact(x: torch.Tensor, p1: int = 2, p2: int = 2) -> bool:
    """True if depth_to_space(space_to_depth(x)) gives back x bit for bit."""
    return torch.equal(depth_to_space(space_to_depth(x, p1, p2), p1, p2), x)


def maxpool_survivors(x: torch.Tensor, p1: int = 2, p2: int | None = None) -> torch.Tensor:
    """A bool mask shaped like ``x``: True at the one pixel of each p1 x p2 window that MaxPool keeps.

    On ties PyTorch keeps the first maximum in row-major order; the mask follows it.
    """
    p2 = p1 if p2 is None else p2
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise CourseError("maxpool_survivors needs a 4-D tensor (batch, channels, height, width).")
    _check_factors(x.shape[2], x.shape[3], p1, p2)
    _, idx = nn.functional.max_pool2d(x.double(), (p1, p2), return_indices=True)
    mask = torch.zeros(x.shape[0], x.shape[1], x.shape[2] * x.shape[3], dtype=torch.bool)
    mask.scatter_(2, idx.flatten(2), True)
    return mask.view_as(x)


def pooling_param_cost(channels: int, norm: str = "group", groups: int = 32, act: str = "gelu") -> dict:
    """Parameters of MaxPool2d(2) (none) and of the rearrange-pooling block for ``channels`` channels.

    The block's convolution is Conv3x3(4C -> C): 9*4C*C weights + C biases; its norm adds 2C (scale and shift).
    """
    block = RearrangePool(channels, norm, groups, act)
    conv = block.conv[0]
    norm_layer = block.conv[1]
    return {
        "maxpool": sum(p.numel() for p in nn.MaxPool2d(2).parameters()),
        "rearrange": sum(p.numel() for p in block.rearrange.parameters()),
        "conv_weight": conv.weight.numel(),
        "conv_bias": conv.bias.numel(),
        "norm": sum(p.numel() for p in norm_layer.parameters()),
        "block": sum(p.numel() for p in block.parameters()),
    }


def conv_matrix(conv: nn.Conv2d, in_shape: tuple[int, int, int]) -> torch.Tensor:
    """The matrix of the linear part of ``conv`` (bias left out) on inputs of shape (C, H, W), in float64."""
    n = in_shape[0] * in_shape[1] * in_shape[2]
    eye = torch.eye(n, dtype=torch.float64).view(n, *in_shape)
    with torch.no_grad():
        cols = nn.functional.conv2d(eye, conv.weight.double(), None, conv.stride, conv.padding)
    return cols.reshape(n, -1).T  # (outputs, inputs)


def block_not_invertible(channels: int = 1, h: int = 4, w: int | None = None, seed: int = 0, norm: str = "group",
                         groups: int = 1, act: str = "gelu") -> dict:
    """Two different inputs that a freshly initialised RearrangePool maps to the same output.

    The rearrange turns C*H*W numbers into 4C*(H/2)*(W/2) = C*H*W numbers (a bijection); the convolution
    then maps those to C*(H/2)*(W/2): a linear map from a bigger space to one four times smaller, so
    its rank is at most the output size and it has a null space of dimension at least 3/4 of its input.
    Adding any null-space vector (rearranged back to image layout) to an input leaves the
    convolution's output - hence the whole block's output - unchanged.
    """
    w = h if w is None else w
    _check_factors(h, w, 2, 2)
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    block = RearrangePool(channels, norm, groups, act).double().eval()
    conv = block.conv[0]
    shape = (4 * channels, h // 2, w // 2)
    m = conv_matrix(conv, shape)
    rank = int(torch.linalg.matrix_rank(m))
    _, _, vh = torch.linalg.svd(m)
    null_vec = vh[-1].view(1, *shape)                  # a direction the convolution cannot see
    null_img = depth_to_space(null_vec, 2, 2)          # the same direction in image layout
    x1 = torch.randn(1, channels, h, w, generator=gen, dtype=torch.float64)
    x2 = x1 + 3.0 * null_img / null_img.abs().max()
    with torch.no_grad():
        y1, y2 = block(x1), block(x2)
    return {
        "in_numbers": channels * h * w,
        "rearranged_numbers": 4 * channels * (h // 2) * (w // 2),
        "out_numbers": channels * (h // 2) * (w // 2),
        "conv_rank": rank,
        "null_space_dim": m.shape[1] - rank,
        "x1": x1, "x2": x2, "y1": y1, "y2": y2,
        "input_diff": float((x1 - x2).abs().max()),
        "output_diff": float((y1 - y2).abs().max()),
    }
