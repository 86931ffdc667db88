"""Notebook 10's checked exercise: the classifier-free guidance formula.

Reference: :func:`course_utils.diffusion.guided_output`, which computes (1 + w) e_cond - w e_uncond from the network's
two predictions; here the same formula on given predictions.
"""
from __future__ import annotations

import torch

from course_utils.exercises.checking import Case, run_check, tensor_comparer


def _reference(e_cond: torch.Tensor, e_uncond: torch.Tensor, w: float) -> torch.Tensor:
    return (1 + w) * e_cond - w * e_uncond


def check_guide(student_fn) -> bool | None:
    """``guide(e_cond, e_uncond, w)`` = (1 + w) e_cond - w e_uncond."""
    g = torch.Generator().manual_seed(1010)
    def r(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64)
    specs = [
        ("w = 2 on a batch of 16x16 predictions", r(4, 1, 16, 16), r(4, 1, 16, 16), 2.0),
        ("w = 0: the conditional prediction itself", r(2, 1, 4, 4), r(2, 1, 4, 4), 0.0),
        ("w = 0.5", r(3, 1, 2, 2), r(3, 1, 2, 2), 0.5),
        ("equal predictions: guidance changes nothing", torch.ones(2, 1, 2, 2, dtype=torch.float64),
         torch.ones(2, 1, 2, 2, dtype=torch.float64), 4.0),
        ("w = -1: the unconditional prediction", r(2, 1, 3, 3), r(2, 1, 3, 3), -1.0),
    ]
    cases = [Case(name, {"e_cond": a, "e_uncond": b, "w": w}, _reference(a, b, w)) for name, a, b, w in specs]
    return run_check("guide", student_fn, cases, tensor_comparer(1e-9, 1e-12),
                     hint="(1 + w) * e_cond - w * e_uncond, i.e. e_cond + w * (e_cond - e_uncond): move further in "
                          "the direction the label adds.")
