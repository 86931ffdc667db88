"""Notebook 03's checked exercises: GroupNorm by hand, and which group counts a layer with C channels accepts.

References: ``torch.nn.GroupNorm`` itself (with the case's weight, bias and eps), and
:func:`course_utils.model.blocks.divisors`, confirmed by building ``nn.GroupNorm`` for every candidate.
"""
from __future__ import annotations

import torch
from torch import nn

from course_utils.exercises.checking import Case, compare_int_lists, run_check, tensor_comparer
from course_utils.model.blocks import divisors


def _randn(*shape, seed):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def reference_group_norm(x, num_groups, weight, bias, eps):
    layer = nn.GroupNorm(num_groups, x.shape[1], eps=eps)
    with torch.no_grad():
        layer.weight.copy_(weight)
        layer.bias.copy_(bias)
        return layer(x)


def group_norm_cases() -> list[Case]:
    specs = [  # name, shape, groups, affine (random weight/bias?), eps, how the input looks
        ("2 groups of 4 channels, weight 1, bias 0", (2, 8, 4, 4), 2, False, 1e-5, "random"),
        ("32 groups of 2 channels (the course's GroupNorm(32, 64))", (2, 64, 4, 4), 32, True, 1e-5, "random"),
        ("1 group: every channel together (LayerNorm-like)", (2, 6, 3, 3), 1, True, 1e-5, "random"),
        ("one group per channel (InstanceNorm-like)", (2, 4, 3, 3), 4, True, 1e-5, "random"),
        ("a batch of one, non-square 2x5 maps", (1, 6, 2, 5), 3, True, 1e-5, "random"),
        ("a constant group: variance 0, so only eps avoids 0/0", (2, 4, 3, 3), 2, True, 1e-5, "constant"),
        ("a large eps = 0.5 (eps goes inside the square root)", (2, 4, 3, 3), 2, True, 0.5, "random"),
        ("shifted and scaled input (mean 5, std 3)", (3, 8, 4, 4), 4, True, 1e-5, "shifted"),
    ]
    cases = []
    for k, (name, shape, groups, affine, eps, kind) in enumerate(specs):
        x = _randn(*shape, seed=400 + k)
        if kind == "constant":
            x[:, : shape[1] // groups] = 0.75  # exactly representable: the mean is exact
        elif kind == "shifted":
            x = 5 + 3 * x
        c = shape[1]
        weight = _randn(c, seed=500 + k) if affine else torch.ones(c)
        bias = _randn(c, seed=600 + k) if affine else torch.zeros(c)
        cases.append(Case(name, {"x": x, "num_groups": groups, "weight": weight, "bias": bias, "eps": eps},
                          reference_group_norm(x, groups, weight, bias, eps)))
    return cases


def check_group_norm(student_fn) -> bool | None:
    """``group_norm(x, num_groups, weight, bias, eps)`` against ``nn.GroupNorm(num_groups, C, eps)``."""
    return run_check("group_norm", student_fn, group_norm_cases(), tensor_comparer(1e-4, 1e-4),
                     hint="reshape to (B, num_groups, -1), take the mean and the *biased* variance (unbiased=False) "
                          "over the last axis, normalize with (x - mean) / sqrt(var + eps), reshape back, then "
                          "multiply by weight and add bias per channel (.view(1, C, 1, 1)).")


def valid_group_counts(channels: int) -> list[int]:
    """Every num_groups that nn.GroupNorm accepts for ``channels`` channels (the divisors, each one built)."""
    out = []
    for g in divisors(channels):
        nn.GroupNorm(g, channels)  # raises if the course's rule were wrong
        out.append(g)
    return out


def check_valid_group_counts(student_fn) -> bool | None:
    """``valid_group_counts(channels)``: the sorted list of every valid ``num_groups`` for ``channels`` channels."""
    cases = [Case(f"C = {c}{note}", {"channels": c}, valid_group_counts(c))
             for c, note in [(8, ""), (64, " (the optimized U-Net's width)"), (1, " (a single channel)"),
                             (7, " (a prime)"), (12, ""), (96, ""), (128, "")]]
    return run_check("valid_group_counts", student_fn, cases, compare_int_lists,
                     hint="num_groups counts groups: it must divide C exactly (C % g == 0), from 1 (one group of all "
                          "channels) up to C itself (one channel per group), in increasing order.")
