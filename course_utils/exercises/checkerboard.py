"""Notebook 02's checked exercises: a transposed convolution's output size and its overlap counts.

The reference runs the real layer: ``F.conv_transpose1d`` with every weight 1 on an input of ones, so each output
position holds the number of kernel taps (stamps) that land on it; its length is the output size. A 2-D layer with
the same settings in both directions has the outer product of these 1-D counts as its overlap map.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from course_utils.exercises.checking import Case, compare_int, compare_int_lists, run_check

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


def check_output_size(student_fn) -> bool | None:
    """``output_size(n, kernel, stride, padding, output_padding)``: the length of ConvTranspose's output."""
    return run_check("output_size", student_fn, _cases(len), compare_int,
                     hint="the n inputs sit `stride` apart, so the stamps span (n - 1) * stride + kernel positions; "
                          "padding removes `padding` from each end and output_padding adds that many at the end.")


def check_overlap_counts(student_fn) -> bool | None:
    """``overlap_counts(n, kernel, stride, padding, output_padding)``: how many kernel taps land on each output pixel."""
    return run_check("overlap_counts", student_fn, _cases(lambda c: c), compare_int_lists,
                     hint="input i stamps the kernel onto positions i * stride + j - padding for j = 0..kernel-1; "
                          "count the stamps per position of the full output (including output_padding at the end) "
                          "and ignore the positions that fall outside it.")
