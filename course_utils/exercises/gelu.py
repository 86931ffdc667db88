"""Notebook 04's checked exercises: GELU with ``erf`` and its derivative.

References: ``torch.nn.functional.gelu`` (the exact, erf-based GELU that ``nn.GELU()`` uses) and its derivative by
autograd, in float64 so that the tanh approximation does not pass for the exact function.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from course_utils.exercises.checking import Case, Hints, checker, run_check, tensor_comparer

ANSWERS = "answers/04_gelu.md"

GRAD_ZERO = -0.7517916  # where GELU'(x) = 0 (notebook 04 finds it by bisection)


def _inputs() -> list[tuple[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(404)
    return [
        ("a few points from -3 to 3", torch.tensor([-3.0, -1.0, -0.5, 0.0, 0.5, 1.0, 3.0], dtype=torch.float64)),
        ("x = 0 exactly", torch.zeros(1, dtype=torch.float64)),
        ("large |x|: -10 and 10", torch.tensor([-10.0, 10.0], dtype=torch.float64)),
        ("where GELU's slope is zero and most negative", torch.tensor([GRAD_ZERO, -2 ** 0.5], dtype=torch.float64)),
        ("a (4, 5) batch of random values", torch.randn(4, 5, generator=g, dtype=torch.float64) * 2),
        ("a float32 input (the result stays float32)", torch.linspace(-4, 4, 17)),
    ]


def _gelu_grad(x: torch.Tensor) -> torch.Tensor:
    x = x.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(F.gelu(x).sum(), x)
    return g


@checker(nudge="GELU multiplies its input by the probability that a standard normal variable is below it: the "
               "exact normal distribution function, not the tanh approximation.",
         formula="GELU(x) = x · Φ(x), Φ(x) = ½ (1 + erf(x / √2)). API: torch.erf, math.sqrt.")
def check_gelu(student_fn, hints: Hints) -> bool | None:
    """``gelu(x)`` = x * Phi(x), elementwise, against ``F.gelu``."""
    cases = [Case(name, {"x": x}, F.gelu(x)) for name, x in _inputs()]
    return run_check("gelu", student_fn, cases, tensor_comparer(1e-6, 1e-7), hints)


@checker(nudge="GELU is a product of the input and the normal distribution function, so its slope has two terms "
               "by the product rule; the second uses the normal density.",
         formula="d/dx [x · Φ(x)] = Φ(x) + x · φ(x), with the normal density φ(x) = exp(−x² / 2) / √(2π). API: "
                 "torch.erf, torch.exp, math.pi.")
def check_gelu_derivative(student_fn, hints: Hints) -> bool | None:
    """``gelu_derivative(x)`` = Phi(x) + x * phi(x), elementwise, against autograd."""
    cases = [Case(name, {"x": x}, _gelu_grad(x)) for name, x in _inputs()]
    return run_check("gelu_derivative", student_fn, cases, tensor_comparer(1e-6, 1e-7), hints)
