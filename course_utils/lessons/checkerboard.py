"""Where checkerboard artifacts come from: overlap counts of upsamplers, computed exactly.

A transposed convolution with kernel size k and stride s "stamps" one k x k copy of its kernel
onto the output for every input pixel, moving s output pixels per input pixel. Where stamps
overlap, their contributions add up. Feed it a constant input with every weight equal to 1 and
each output pixel shows how many stamps cover it: its *overlap count*. When k is not a multiple
of s the count changes periodically from pixel to pixel (k=3, s=2 gives 1, 2, 1, 2, ... in each
direction, so 1, 2 and 4 in 2-D): the layer prints a checkerboard even when its input carries
no pattern at all. When k is a multiple of s every output pixel in the interior is covered
k/s times in each direction, and nearest-neighbour resizing followed by an ordinary convolution
is uniform in the interior for any kernel size (Odena, Dumoulin and Olah, "Deconvolution and
Checkerboard Artifacts", Distill, 2016).

Every map here is computed two ways: by counting contributions (``method="count"``, plain
integer arithmetic) and by running the real PyTorch layers with unit weights and zero bias
(``method="torch"``). The tests check that the two agree.

The counts are separable: a k x k kernel of ones is the outer product of two length-k rows of
ones, so the 2-D map is ``outer(profile, profile)`` of the 1-D profile.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from course_utils.errors import CourseError
from course_utils.model.blocks import make_upsampler

# The three upsamplers of course_utils.model.blocks.make_upsampler, as (kind, parameters).
UPSAMPLER_PARAMS: dict[str, tuple[str, dict]] = {
    "convT3": ("transposed", dict(kernel=3, stride=2, padding=1, output_padding=1)),
    "convT2": ("transposed", dict(kernel=2, stride=2, padding=0, output_padding=0)),
    "resize": ("resize", dict(scale=2, kernel=3, padding=1)),
}


# --- checks ------------------------------------------------------------------------------------------

def _positive_int(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise CourseError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    return int(value)


def output_size(n: int, kernel: int, stride: int, padding: int = 0, output_padding: int = 0) -> int:
    """Side of ConvTranspose2d's output for an n x n input: (n - 1) * s - 2p + k + output_padding."""
    return (n - 1) * stride - 2 * padding + kernel + output_padding


def check_transposed(n: int, kernel: int, stride: int, padding: int = 0, output_padding: int = 0,
                     layers: int = 1) -> None:
    """Raise CourseError, naming the fix, for parameters PyTorch's ConvTranspose2d would reject."""
    _positive_int("the input size n", n)
    _positive_int("kernel", kernel)
    _positive_int("stride", stride)
    _positive_int("padding", padding, 0)
    _positive_int("output_padding", output_padding, 0)
    _positive_int("layers", layers)
    if output_padding >= stride:
        raise CourseError(f"output_padding={output_padding} must be smaller than the stride ({stride}); "
                          f"it only adds rows that the last stride step left out. Use 0..{stride - 1}.")
    size = n
    for layer in range(layers):
        size = output_size(size, kernel, stride, padding, output_padding)
        if size < 1:
            raise CourseError(f"ConvTranspose2d(kernel={kernel}, stride={stride}, padding={padding}, "
                              f"output_padding={output_padding}) leaves no output pixels in layer {layer + 1}: "
                              "padding crops p pixels from each side of the output. Fix: use a smaller padding "
                              "or a larger input.")


def same_size_output_padding(kernel: int, stride: int, padding: int) -> int | None:
    """The output_padding that makes the output exactly ``stride`` times the input, or None if none does.

    For k=3, s=2, p=1 this is 1: the baseline's ConvTranspose2d(3, 2, 1, output_padding=1).
    """
    op = stride - kernel + 2 * padding
    return op if 0 <= op < stride else None


# --- transposed convolution ----------------------------------------------------------------------------

def transposed_counts_1d(x, kernel: int, stride: int, padding: int = 0, output_padding: int = 0) -> np.ndarray:
    """1-D transposed convolution with a kernel of ones, by counting contributions (integer arithmetic).

    Input pixel i and kernel tap j land on output position o = i*s + j - p. Positions past the
    last stamp (added by output_padding) receive nothing.
    """
    x = np.asarray(x, dtype=np.int64)
    n = len(x)
    out = np.zeros(output_size(n, kernel, stride, padding, output_padding), dtype=np.int64)
    for i in range(n):
        for j in range(kernel):
            o = i * stride + j - padding
            if 0 <= o < len(out):
                out[o] += x[i]
    return out


def overlap_profile(n: int, kernel: int, stride: int, padding: int = 0, output_padding: int = 0,
                    layers: int = 1) -> np.ndarray:
    """How many input pixels reach each output position in 1-D, after ``layers`` stacked layers.

    With several layers it counts paths: the output of one layer is the input of the next.
    """
    check_transposed(n, kernel, stride, padding, output_padding, layers)
    x = np.ones(n, dtype=np.int64)
    for _ in range(layers):
        x = transposed_counts_1d(x, kernel, stride, padding, output_padding)
    return x


def _torch_transposed_map(n, kernel, stride, padding, output_padding, layers) -> np.ndarray:
    x = torch.ones(1, 1, n, n, dtype=torch.float64)
    with torch.no_grad():
        for _ in range(layers):
            layer = nn.ConvTranspose2d(1, 1, kernel, stride, padding, output_padding, bias=False).double()
            nn.init.ones_(layer.weight)
            x = layer(x)
    return np.rint(x[0, 0].numpy()).astype(np.int64)


def overlap_map(n: int, kernel: int, stride: int, padding: int = 0, output_padding: int = 0,
                layers: int = 1, method: str = "count") -> np.ndarray:
    """The overlap count map (integers) of ``layers`` stacked ConvTranspose2d on a constant n x n input.

    ``method="count"``: outer product of :func:`overlap_profile`; ``method="torch"``: run
    nn.ConvTranspose2d with weights 1 and no bias on torch.ones(1, 1, n, n).
    """
    check_transposed(n, kernel, stride, padding, output_padding, layers)
    if method == "count":
        p = overlap_profile(n, kernel, stride, padding, output_padding, layers)
        return np.outer(p, p)
    if method == "torch":
        return _torch_transposed_map(n, kernel, stride, padding, output_padding, layers)
    raise CourseError(f"unknown method {method!r}; choose 'count' (by counting) or 'torch' (run the layer).")


# --- resize, then convolve -----------------------------------------------------------------------------

def check_resize(n: int, scale: int, kernel: int, padding: int | None, layers: int = 1) -> int:
    """Validate and return the convolution's padding (default (kernel - 1) // 2, 'same' for odd kernels)."""
    _positive_int("the input size n", n)
    _positive_int("scale", scale)
    _positive_int("kernel", kernel)
    _positive_int("layers", layers)
    padding = (kernel - 1) // 2 if padding is None else _positive_int("padding", padding, 0)
    size = n
    for layer in range(layers):
        size = size * scale + 2 * padding - kernel + 1
        if size < 1:
            raise CourseError(f"resize x{scale} then Conv2d(kernel={kernel}, padding={padding}) leaves no output "
                              f"pixels in layer {layer + 1}. Fix: use more padding, a smaller kernel or a larger input.")
    return padding


def resize_conv_counts_1d(x, scale: int, kernel: int, padding: int) -> np.ndarray:
    """1-D nearest-neighbour resize by ``scale``, then a stride-1 convolution with a kernel of ones (zero padding)."""
    up = np.repeat(np.asarray(x, dtype=np.int64), scale)
    m = len(up)
    out = np.zeros(m + 2 * padding - kernel + 1, dtype=np.int64)
    for o in range(len(out)):
        for j in range(kernel):
            q = o + j - padding
            if 0 <= q < m:
                out[o] += up[q]
    return out


def resize_conv_profile(n: int, scale: int = 2, kernel: int = 3, padding: int | None = None,
                        layers: int = 1) -> np.ndarray:
    """1-D counts of ``layers`` x (nearest resize by ``scale``, then Conv with kernel ``kernel``)."""
    padding = check_resize(n, scale, kernel, padding, layers)
    x = np.ones(n, dtype=np.int64)
    for _ in range(layers):
        x = resize_conv_counts_1d(x, scale, kernel, padding)
    return x


def resize_conv_map(n: int, scale: int = 2, kernel: int = 3, padding: int | None = None, layers: int = 1,
                    method: str = "count") -> np.ndarray:
    """Count map of nearest-resize-then-convolve on a constant input: uniform inside, smaller only at the border."""
    padding = check_resize(n, scale, kernel, padding, layers)
    if method == "count":
        p = resize_conv_profile(n, scale, kernel, padding, layers)
        return np.outer(p, p)
    if method == "torch":
        x = torch.ones(1, 1, n, n, dtype=torch.float64)
        with torch.no_grad():
            for _ in range(layers):
                conv = nn.Conv2d(1, 1, kernel, padding=padding, bias=False).double()
                nn.init.ones_(conv.weight)
                x = conv(nn.functional.interpolate(x, scale_factor=scale, mode="nearest"))
        return np.rint(x[0, 0].numpy()).astype(np.int64)
    raise CourseError(f"unknown method {method!r}; choose 'count' (by counting) or 'torch' (run the layers).")


# --- interior and unevenness ---------------------------------------------------------------------------

def _interior_1d(profile_fn, n: int, stride: int, layers: int, margin: int) -> np.ndarray:
    """Positions whose count equals the count the same position gets when the input is much wider.

    Adding ``margin`` input pixels on the left shifts every output by margin * stride**layers, so we
    can line the two profiles up and keep the positions the border did not reach.
    """
    small = profile_fn(n)
    big = profile_fn(n + 2 * margin)
    shift = margin * stride ** layers
    return small == big[shift: shift + len(small)]


def interior_mask(n: int, kernel: int, stride: int, padding: int = 0, output_padding: int = 0,
                  layers: int = 1) -> np.ndarray:
    """Boolean map: True where the border of the input does not change the overlap count."""
    check_transposed(n, kernel, stride, padding, output_padding, layers)
    m = _interior_1d(lambda size: overlap_profile(size, kernel, stride, padding, output_padding, layers),
                     n, stride, layers, margin=kernel * layers + 2)
    return np.outer(m, m)


def resize_conv_interior_mask(n: int, scale: int = 2, kernel: int = 3, padding: int | None = None,
                              layers: int = 1) -> np.ndarray:
    padding = check_resize(n, scale, kernel, padding, layers)
    m = _interior_1d(lambda size: resize_conv_profile(size, scale, kernel, padding, layers),
                     n, scale, layers, margin=kernel * layers + 2)
    return np.outer(m, m)


def unevenness(counts, mask=None) -> float:
    """max / min of the counts where ``mask`` is True (everywhere if no mask).

    1.0 means perfectly even. ``inf`` means some pixels get no contribution at all (gaps, k < s);
    ``nan`` means the mask is empty (the input is too small to have an interior).
    """
    c = np.asarray(counts)
    vals = c[np.asarray(mask, dtype=bool)] if mask is not None else c.ravel()
    if vals.size == 0:
        return float("nan")
    lo, hi = vals.min(), vals.max()
    return float("inf") if lo == 0 else float(hi / lo)


def _interior_values_1d(profile_fn, stride: int, layers: int, kernel: int) -> list[int]:
    margin = kernel * layers + 2
    n = 2 * margin + 1
    small = profile_fn(n)
    return sorted({int(v) for v in small[_interior_1d(profile_fn, n, stride, layers, margin)]})


def _products(values: list[int]) -> list[int]:
    return sorted({a * b for a in values for b in values})


def interior_counts(kernel: int, stride: int, layers: int = 1) -> list[int]:
    """The distinct overlap counts far from any border (they repeat with period stride**layers).

    A 2-D count is a row count times a column count, so these are the products of the 1-D values.
    """
    return _products(_interior_values_1d(lambda size: overlap_profile(size, kernel, stride, 0, 0, layers),
                                         stride, layers, kernel))


def transposed_unevenness(kernel: int, stride: int, layers: int = 1) -> float:
    """Unevenness of the interior of ``layers`` stacked transposed convolutions, independent of input size.

    Padding and output_padding only crop or extend the border, so they do not change it:
    k=3, s=2 gives 4.0 (counts 1, 2, 4); any k divisible by s gives 1.0; k < s gives inf (gaps).
    """
    vals = interior_counts(kernel, stride, layers)
    return float("inf") if vals[0] == 0 else float(vals[-1] / vals[0])


def resize_conv_interior_counts(scale: int = 2, kernel: int = 3, layers: int = 1) -> list[int]:
    """Distinct counts of resize-then-convolve far from the border: always the single value kernel**(2*layers)."""
    return _products(_interior_values_1d(lambda size: resize_conv_profile(size, scale, kernel, None, layers),
                                         scale, layers, kernel))


def resize_conv_unevenness(scale: int = 2, kernel: int = 3, layers: int = 1) -> float:
    """Unevenness of the interior of resize-then-convolve: 1.0 for every scale, kernel and depth."""
    vals = resize_conv_interior_counts(scale, kernel, layers)
    return float("inf") if vals[0] == 0 else float(vals[-1] / vals[0])


# --- the course's real upsamplers ----------------------------------------------------------------------

def upsampler_counts(kind: str, n: int = 4) -> np.ndarray:
    """The count map predicted for ``course_utils.model.blocks.make_upsampler(kind, ...)`` by counting."""
    if kind not in UPSAMPLER_PARAMS:
        raise CourseError(f"unknown upsampler {kind!r}; choose one of {tuple(UPSAMPLER_PARAMS)}.")
    family, params = UPSAMPLER_PARAMS[kind]
    return overlap_map(n, **params) if family == "transposed" else resize_conv_map(n, **params)


def upsampler_response(kind: str, n: int = 4, weights: str = "ones", seed: int = 0) -> np.ndarray:
    """Build ``make_upsampler(kind, 1, 1)`` and return its output (H, W) for a constant n x n input of ones.

    ``weights="ones"``: every weight 1 and every bias 0, so the output is the overlap count map.
    ``weights="init"``: PyTorch's default random initialisation (seeded), bias included: what an
    untrained layer of that kind really does to a flat input.
    """

    _positive_int("the input size n", n)
    if weights not in ("ones", "init"):
        raise CourseError(f"weights={weights!r}; choose 'ones' (overlap counts) or 'init' (PyTorch's default init).")
    torch.manual_seed(seed)
    layer = make_upsampler(kind, 1, 1, where=f"upsampler_response({kind!r})").double()
    if weights == "ones":
        for m in layer.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
    with torch.no_grad():
        y = layer(torch.ones(1, 1, n, n, dtype=torch.float64))[0, 0].numpy()
    return np.rint(y).astype(np.int64) if weights == "ones" else y


def _upsampler_interior(kind: str, n: int) -> np.ndarray:
    family, params = UPSAMPLER_PARAMS[kind]
    return interior_mask(n, **params) if family == "transposed" else resize_conv_interior_mask(n, **params)


def upsampler_unevenness(kind: str, n: int = 12) -> float:
    """max/min overlap count of ``make_upsampler(kind)`` (unit weights) away from the border:
    convT3 4.0, convT2 1.0, resize 1.0."""
    return unevenness(upsampler_response(kind, n, "ones"), _upsampler_interior(kind, n))


def upsampler_spread(kind: str, weights: str = "init", n: int = 12, seed: int = 0) -> float:
    """max - min of ``make_upsampler(kind)``'s response to a constant input, away from the border.

    0 means the layer turns a flat input into a flat output. With ``weights="init"`` this shows
    that a transposed convolution with *random* weights prints a periodic pattern even when
    k is divisible by s (each output pixel of k=2, s=2 sees a different weight); training has to
    make those weights agree. Resize-then-convolve is flat for any weights.
    """
    y = upsampler_response(kind, n, weights, seed)
    vals = y[_upsampler_interior(kind, n)]
    return float(vals.max() - vals.min())


def format_map(counts) -> str:
    """Integer map as aligned text rows (for printed, checkable output)."""
    c = np.asarray(counts)
    width = max(len(str(int(v))) for v in c.ravel())
    return "\n".join(" ".join(f"{int(v):>{width}d}" for v in row) for row in c)

