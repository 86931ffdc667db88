"""Notebook 09's checked exercises: the signal-to-noise ratio of a linear schedule, and one DDIM step.

References: :class:`course_utils.diffusion.Schedule` (``snr``) and :func:`course_utils.diffusion.ddim_step`.
"""
from __future__ import annotations

from types import SimpleNamespace

import torch

from course_utils.diffusion import Schedule, ddim_step
from course_utils.exercises.checking import Case, run_check, tensor_comparer


def _snr64(beta_start: float, beta_end: float, T: int) -> torch.Tensor:
    """The course's :class:`Schedule` computed in float64 (the exact values a float32 answer is compared with)."""
    s = Schedule(T=T, beta_start=beta_start, beta_end=beta_end)
    ab = torch.cumprod(1 - torch.linspace(beta_start, beta_end, T, dtype=torch.float64), 0)
    assert torch.allclose(ab.float(), s.alpha_bar, rtol=1e-4)
    return ab / (1 - ab)


def check_linear_snr(student_fn) -> bool | None:
    """``linear_snr(beta_start, beta_end, T)``: SNR_t = abar_t / (1 - abar_t) for t = 0 .. T-1 of the linear
    schedule (beta evenly spaced from beta_start to beta_end, abar_t the product of 1 - beta up to t)."""
    specs = [
        ("the course's schedule: 1e-4 to 0.02 over T = 150", 1e-4, 0.02, 150),
        ("the DDPM paper's: 1e-4 to 0.02 over T = 1000", 1e-4, 0.02, 1000),
        ("scaled to T = 150: beta x 1000/150", 1e-4 * 1000 / 150, 0.02 * 1000 / 150, 150),
        ("a constant beta = 0.1 over T = 5", 0.1, 0.1, 5),
        ("the shortest schedule, T = 2", 0.01, 0.5, 2),
    ]
    cases = [Case(name, {"beta_start": b0, "beta_end": b1, "T": T}, _snr64(b0, b1, T)) for name, b0, b1, T in specs]
    float32_ok = tensor_comparer(1e-3, 1e-9)  # float32 rounds 1 - 1e-4: SNR_0 comes out 9997.3 instead of 9999

    def compare(expected, actual):
        if isinstance(actual, torch.Tensor) and actual.is_floating_point():
            actual = actual.double()
        return float32_ok(expected, actual)
    return run_check("linear_snr", student_fn, cases, compare,
                     hint="betas = torch.linspace(beta_start, beta_end, T); alpha_bar = torch.cumprod(1 - betas, 0); "
                          "return alpha_bar / (1 - alpha_bar). T values, one per step, the first at t = 0.")


def _reference_ddim(x_t, eps, abar_t, abar_s, eta, noise):
    schedule = SimpleNamespace(alpha_bar=torch.tensor([abar_s, abar_t], dtype=torch.float64))
    return ddim_step(schedule, x_t, 1, 0 if abar_s < 1 else -1, eps, eta, noise)


def check_ddim_step(student_fn) -> bool | None:
    """``ddim_step(x_t, eps, abar_t, abar_s, eta, noise)``: one DDIM step from abar_t to abar_s (Song et al., 2021)."""
    g = torch.Generator().manual_seed(909)
    def r(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64)
    specs = [
        ("deterministic (eta = 0), abar 0.22 -> 0.5", (2, 1, 4, 4), 0.22, 0.5, 0.0),
        ("eta = 1: DDPM-like noise, abar 0.3 -> 0.6", (2, 1, 4, 4), 0.3, 0.6, 1.0),
        ("eta = 0.5", (3, 1, 2, 2), 0.1, 0.9, 0.5),
        ("the last step, to the image (abar_s = 1: sigma = 0)", (2, 1, 4, 4), 0.9, 1.0, 1.0),
        ("a step that stays put (abar_s = abar_t): x_s = x_t", (1, 1, 3, 3), 0.4, 0.4, 1.0),
        ("a batch of 16x16 images", (4, 1, 16, 16), 0.2192, 0.35, 1.0),
    ]
    cases = []
    for name, shape, ab_t, ab_s, eta in specs:
        x_t, eps, noise = r(*shape), r(*shape), r(*shape)
        cases.append(Case(name, {"x_t": x_t, "eps": eps, "abar_t": ab_t, "abar_s": ab_s, "eta": eta, "noise": noise},
                          _reference_ddim(x_t, eps, ab_t, ab_s, eta, noise)))
    return run_check("ddim_step", student_fn, cases, tensor_comparer(1e-6, 1e-8),
                     hint="x0 = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t); sigma = eta * sqrt((1 - abar_s) / "
                          "(1 - abar_t)) * sqrt(1 - abar_t / abar_s); x_s = sqrt(abar_s) x0 + sqrt(1 - abar_s - "
                          "sigma**2) eps + sigma noise.")
