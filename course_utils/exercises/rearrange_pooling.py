"""Notebook 05's checked exercises: space-to-depth with einops and its inverse, depth-to-space.

References: ``nn.PixelUnshuffle(2)`` and ``nn.PixelShuffle(2)``, which are exactly the rearranges
``b c (h p1) (w p2) -> b (c p1 p2) h w`` and back (the course's RearrangePool uses the first).
"""
from __future__ import annotations

import torch
from torch import nn

from course_utils.exercises.checking import Case, Hints, checker, run_check, tensor_comparer

ANSWERS = "answers/05_rearrange_pooling.md"


def _images() -> list[tuple[str, torch.Tensor]]:
    """Inputs of space-to-depth: (B, C, H, W) with H and W even."""
    g = torch.Generator().manual_seed(505)
    return [
        ("a labelled 4x4 grid (value = flat index)", torch.arange(16.0).view(1, 1, 4, 4)),
        ("the smallest input, one 2x2 patch", torch.arange(4.0).view(1, 1, 2, 2)),
        ("3 channels, labelled", torch.arange(2 * 3 * 16.0).view(2, 3, 4, 4)),
        ("a non-square 4x6 map", torch.arange(2 * 4 * 6.0).view(1, 2, 4, 6)),
        ("a random batch like the U-Net's", torch.randn(4, 8, 8, 8, generator=g)),
        ("whole numbers (int64)", torch.arange(3 * 16).view(1, 3, 4, 4)),
    ]


def _stacks() -> list[tuple[str, torch.Tensor]]:
    """Inputs of depth-to-space: (B, 4C, H, W)."""
    g = torch.Generator().manual_seed(506)
    return [
        ("4 labelled channels of 2x2 (value = flat index)", torch.arange(16.0).view(1, 4, 2, 2)),
        ("the smallest input, 4 channels of 1x1", torch.arange(4.0).view(1, 4, 1, 1)),
        ("12 channels (C = 3), labelled", torch.arange(2 * 12 * 4.0).view(2, 12, 2, 2)),
        ("a non-square 2x3 map", torch.arange(8 * 6.0).view(1, 8, 2, 3)),
        ("a random batch like the U-Net's", torch.randn(4, 32, 4, 4, generator=g)),
        ("whole numbers (int64)", torch.arange(12 * 4).view(1, 12, 2, 2)),
    ]


@checker(nudge="each 2 by 2 patch becomes four channels, and the order matters: the new channel index runs over "
               "the old channel first, then the row inside the patch, then the column inside the patch.",
         formula="API: einops.rearrange(x, pattern, p1=2, p2=2), whose pattern splits H into (h p1) and W into (w "
                 "p2) and gathers (c p1 p2) on the channel axis, c first; nn.PixelUnshuffle(2) is the reference.")
def check_space_to_depth(student_fn, hints: Hints) -> bool | None:
    """``space_to_depth(x)``: (B, C, H, W) -> (B, 4C, H/2, W/2), as ``nn.PixelUnshuffle(2)``."""
    cases = [Case(name, {"x": x}, nn.PixelUnshuffle(2)(x)) for name, x in _images()]
    return run_check("space_to_depth", student_fn, cases, tensor_comparer(0, 0), hints)


@checker(nudge="the inverse puts each group of four consecutive channels back into a 2 by 2 patch of one channel, "
               "in the same order the forward rearrange used.",
         formula="API: einops.rearrange with the space-to-depth pattern read backwards, the channel axis (c p1 "
                 "p2) on the left, (h p1) and (w p2) on the right; nn.PixelShuffle(2) is the reference.")
def check_depth_to_space(student_fn, hints: Hints) -> bool | None:
    """``depth_to_space(y)``: (B, 4C, H, W) -> (B, C, 2H, 2W), as ``nn.PixelShuffle(2)``, the inverse."""
    cases = [Case(name, {"y": y}, nn.PixelShuffle(2)(y)) for name, y in _stacks()]
    return run_check("depth_to_space", student_fn, cases, tensor_comparer(0, 0), hints)
