"""Notebook 03's checked exercises: GroupNorm's per-group statistics, and GroupNorm by hand with its per-channel
scale and shift.

References: ``torch.nn.GroupNorm`` itself (with the case's weight, bias and eps); the statistics are those that make
``(x - mean) / sqrt(var + eps)`` equal ``nn.GroupNorm`` without its affine, which :func:`reference_group_stats`
asserts on every case. (Which group counts are valid is an unchecked warm-up in the notebook now: it is a divisor
rule, not the idea.)
"""
from __future__ import annotations

import torch
from torch import nn

from course_utils.exercises.checking import Case, Hints, checker, compare_tensors, run_check, tensor_comparer

ANSWERS = "answers/03_group_norm.md"


def _randn(*shape, seed):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def reference_group_norm(x, num_groups, weight, bias, eps):
    layer = nn.GroupNorm(num_groups, x.shape[1], eps=eps)
    with torch.no_grad():
        layer.weight.copy_(weight)
        layer.bias.copy_(bias)
        return layer(x)


def reference_group_stats(x: torch.Tensor, num_groups: int, eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    """Each image's and group's mean and biased variance, shape (B, G) each, checked against ``nn.GroupNorm``."""
    b, c = x.shape[:2]
    var, mean = torch.var_mean(x.reshape(b, num_groups, -1), dim=-1, unbiased=False)
    per_channel = (c // num_groups, *([1] * (x.ndim - 2)))
    normalized = (x - mean.repeat_interleave(c // num_groups, 1).view(b, c, *per_channel[1:])) / torch.sqrt(
        var.repeat_interleave(c // num_groups, 1).view(b, c, *per_channel[1:]) + eps)
    plain = nn.GroupNorm(num_groups, c, eps=eps, affine=False)
    assert torch.allclose(normalized, plain(x), rtol=1e-4, atol=1e-4), "the statistics disagree with nn.GroupNorm"
    return mean, var


def _compare_stats(expected, actual) -> str | None:
    if not isinstance(actual, (tuple, list)) or len(actual) != 2:
        return f"expected a pair (mean, var), got {type(actual).__name__}"
    for name, e, a in zip(("mean", "var"), expected, actual):
        problem = compare_tensors(e, a, 1e-4, 1e-5)
        if problem:
            return f"{name}: {problem}"
    return None


def group_stats_cases() -> list[Case]:
    specs = [  # name, shape, groups, how the input looks
        ("2 groups of 4 channels", (2, 8, 4, 4), 2, "random"),
        ("32 groups of 2 channels (the course's GroupNorm(32, 64))", (2, 64, 4, 4), 32, "random"),
        ("1 group: every channel together", (2, 6, 3, 3), 1, "random"),
        ("one group per channel", (2, 4, 3, 3), 4, "random"),
        ("channel c holds the value c: group means 1.5 and 5.5", (1, 8, 2, 2), 2, "index"),
        ("shifted and scaled input (mean 5, std 3): the variance is biased (divides by the count)", (3, 8, 2, 2), 4,
         "shifted"),
    ]
    cases = []
    for k, (name, shape, groups, kind) in enumerate(specs):
        x = _randn(*shape, seed=450 + k)
        if kind == "index":
            x = torch.arange(shape[1], dtype=torch.float32).view(1, -1, 1, 1).expand(shape).clone()
        elif kind == "shifted":
            x = 5 + 3 * x
        cases.append(Case(name, {"x": x, "num_groups": groups}, reference_group_stats(x, groups)))
    return cases


@checker(nudge="every image gets its own statistics for each group of consecutive channels, taken over all the "
               "group's channels and pixels together; the variance divides by the number of values, not by one "
               "less.",
         formula="for image b and group g: mean = average of x over the group's C/G channels and H·W pixels, var = "
                 "average of (x − mean)². API: x.reshape(B, G, -1) puts each group on the last axis; .mean(-1), "
                 ".var(-1, unbiased=False) (or torch.var_mean(..., unbiased=False)).")
def check_group_stats(student_fn, hints: Hints) -> bool | None:
    """``group_stats(x, num_groups)``: (mean, var), each of shape (B, num_groups), the biased variance."""
    return run_check("group_stats", student_fn, group_stats_cases(), _compare_stats, hints)


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


@checker(nudge="each image's channels are split into consecutive groups, and each group is normalized with its "
               "own mean and its own biased variance, the small constant inside the square root; only after that "
               "does every channel get its own scale and shift.",
         formula="for each image and group: μ and σ² (the biased variance, dividing by the count) over the "
                 "group's channels and pixels; y = (x − μ) / √(σ² + eps) · weight_c + bias_c. API: x.reshape(B, "
                 "G, -1) puts a group on the last axis; .mean(-1, keepdim=True) and .var(-1, unbiased=False, "
                 "keepdim=True); weight.view(1, C, 1, 1) broadcasts per channel.")
def check_group_norm(student_fn, hints: Hints) -> bool | None:
    """``group_norm(x, num_groups, weight, bias, eps)`` against ``nn.GroupNorm(num_groups, C, eps)``."""
    return run_check("group_norm", student_fn, group_norm_cases(), tensor_comparer(1e-4, 1e-4), hints)
