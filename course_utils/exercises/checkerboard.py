"""Notebook 02's checked exercises: a transposed convolution's output size, its overlap counts, and an up block
(the skip concatenated, then the transposed convolution of the ``upsample`` rung).

The reference runs the real layer: ``F.conv_transpose1d`` with every weight 1 on an input of ones, so each output
position holds the number of kernel taps (stamps) that land on it; its length is the output size. A 2-D layer with
the same settings in both directions has the outer product of these 1-D counts as its overlap map. The up block is checked
against the course's :class:`~course_utils.model.blocks.UpBlock`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from course_utils.exercises.checking import (Case, Hints, checker, compare_int, compare_int_lists, run_check,
                                             tensor_comparer)
from course_utils.model.blocks import UpBlock

ANSWERS = "answers/02_checkerboard_artifacts.md"

# (n, kernel, stride, padding, output_padding, what the case shows)
SETTINGS = [
    (4, 3, 2, 1, 1, "the baseline's upsampler: k=3, s=2, p=1, output_padding=1"),
    (4, 2, 2, 0, 0, "the fix: k=2, s=2 (kernel divisible by stride)"),
    (5, 4, 2, 1, 0, "k=4, s=2, p=1"),
    (4, 5, 2, 2, 1, "k=5, s=2, p=2, output_padding=1"),
    (1, 3, 2, 0, 0, "a single input pixel"),
    (6, 3, 1, 1, 0, "stride 1 (an ordinary 'same' convolution)"),
    (3, 3, 3, 0, 0, "k=3, s=3: stamps touch but never overlap"),
    (4, 7, 3, 2, 2, "k=7, s=3, p=2, output_padding=2"),
]


def transposed_counts(n: int, kernel: int, stride: int, padding: int = 0, output_padding: int = 0) -> list[int]:
    """The course's reference: run ConvTranspose1d with unit weights on ones and read the counts off its output."""
    out = F.conv_transpose1d(torch.ones(1, 1, n, dtype=torch.float64), torch.ones(1, 1, kernel, dtype=torch.float64),
                             stride=stride, padding=padding, output_padding=output_padding)
    return [int(round(v)) for v in out[0, 0].tolist()]


def _cases(value) -> list[Case]:
    return [Case(name, {"n": n, "kernel": k, "stride": s, "padding": p, "output_padding": op},
                 value(transposed_counts(n, k, s, p, op)))
            for n, k, s, p, op, name in SETTINGS]


@checker(nudge="the inputs sit one stride apart, so count how far the first stamp's start is from the last "
               "stamp's end; then the padding trims both ends and the output padding adds to one end only.",
         formula="length = (n − 1) · stride + kernel − 2 · padding + output_padding (PyTorch's formula for "
                 "ConvTranspose1d with dilation 1).")
def check_output_size(student_fn, hints: Hints) -> bool | None:
    """``output_size(n, kernel, stride, padding, output_padding)``: the length of ConvTranspose's output."""
    return run_check("output_size", student_fn, _cases(len), compare_int, hints)


@checker(nudge="every input pixel stamps the whole kernel once, starting one stride further than the previous one "
               "and shifted left by the padding; count the stamps per output position, keep only the positions "
               "inside the output, and remember the output padding at the end.",
         formula="input i covers the output positions i · stride + j − padding for j = 0 … kernel − 1; the output "
                 "has output_size(n, kernel, stride, padding, output_padding) positions. Count with a list of "
                 "zeros and two loops, skipping positions outside the output.")
def check_overlap_counts(student_fn, hints: Hints) -> bool | None:
    """``overlap_counts(n, kernel, stride, padding, output_padding)``: how many kernel taps land on each output pixel."""
    return run_check("overlap_counts", student_fn, _cases(lambda c: c), compare_int_lists, hints)


def up_block_cases() -> list[Case]:
    """The course's :class:`~course_utils.model.blocks.UpBlock` with the ``convT2`` upsampler and no convolutions
    after it: concatenate the skip, then the transposed convolution (k=2, s=2)."""
    specs = [  # name, channels of x (and of the skip), out channels, batch, height, width, skip is zero
        ("8 channels from x and 8 from the skip, 4x4 -> 8x8", 8, 16, 2, 4, 4, False),
        ("a batch of 3, non-square 2x3 maps", 4, 4, 3, 2, 3, False),
        ("the smallest: 1 channel each, 1x1 -> 2x2", 1, 2, 1, 1, 1, False),
        ("a zero skip: only x's half of the weights counts", 3, 5, 2, 2, 2, True),
        ("the upsample rung's widths: 64 + 64 channels in, 32 out, 4x4 -> 8x8", 64, 32, 2, 4, 4, False),
    ]
    cases = []
    for k, (name, c, out_ch, b, h, w, zero_skip) in enumerate(specs):
        torch.manual_seed(250 + k)
        block = UpBlock(c, out_ch, "batch", 1, "relu", "convT2", n_convs=0, norm_after_up=False).eval()
        g = torch.Generator().manual_seed(260 + k)
        x = torch.randn(b, c, h, w, generator=g)
        skip = torch.zeros(b, c, h, w) if zero_skip else torch.randn(b, c, h, w, generator=g)
        up = block.model[0]
        with torch.no_grad():
            expected = block(x, skip)
        cases.append(Case(name, {"x": x, "skip": skip, "weight": up.weight.detach().clone(),
                                 "bias": up.bias.detach().clone()}, expected))
    return cases


@checker(nudge="the skip joins x along the channel axis, x's channels first, so the layer sees twice as many "
               "channels; then a transposed convolution with a 2 by 2 kernel and stride 2, without padding, doubles "
               "the height and the width.",
         formula="y = ConvTranspose2d(k=2, s=2)(concat(x, skip)), the concatenation along the channels. API: "
                 "torch.cat((a, b), dim=1); F.conv_transpose2d(input, weight, bias, stride=2) (torch.nn.functional "
                 "as F), with weight of shape (2C, C_out, 2, 2).")
def check_up_block(student_fn, hints: Hints) -> bool | None:
    """``up_block(x, skip, weight, bias)``: the ``upsample`` rung's up block without its convolutions, as
    :class:`~course_utils.model.blocks.UpBlock` (concatenate the skip, then ConvTranspose2d(k=2, s=2))."""
    return run_check("up_block", student_fn, up_block_cases(), tensor_comparer(1e-5, 1e-5), hints)
