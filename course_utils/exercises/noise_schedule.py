"""Notebook 09's checked exercises: the v-target, the clean image from v, and one DDIM step (the SNR of a linear
schedule, ``check_linear_snr``, is kept for the answers and the tests; the notebook now has it as an unchecked warm-up).

References: :class:`course_utils.diffusion.Schedule` (``target`` with ``prediction="v"``, ``eps_x0``, ``snr``) and
:func:`course_utils.diffusion.ddim_step`.
"""
from __future__ import annotations

from types import SimpleNamespace

import torch

from course_utils.diffusion import Schedule, ddim_step
from course_utils.exercises.checking import Case, Hints, checker, run_check, tensor_comparer

ANSWERS = "answers/09_noise_schedule_and_sampling.md"


def _snr64(beta_start: float, beta_end: float, T: int) -> torch.Tensor:
    """The course's :class:`Schedule` computed in float64 (the exact values a float32 answer is compared with)."""
    s = Schedule(T=T, beta_start=beta_start, beta_end=beta_end)
    ab = torch.cumprod(1 - torch.linspace(beta_start, beta_end, T, dtype=torch.float64), 0)
    assert torch.allclose(ab.float(), s.alpha_bar, rtol=1e-4)
    return ab / (1 - ab)


@checker(nudge="the betas are evenly spaced from the first value to the last, abar is their running product of "
               "one minus beta, and the ratio compares signal variance with noise variance, one value per step "
               "starting at step 0.",
         formula="β_t evenly spaced from beta_start to beta_end (T values), ᾱ_t = ∏_{s ≤ t} (1 − β_s), SNR_t = "
                 "ᾱ_t / (1 − ᾱ_t). API: torch.linspace, torch.cumprod(values, 0).")
def check_linear_snr(student_fn, hints: Hints) -> bool | None:
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
    return run_check("linear_snr", student_fn, cases, compare, hints)


def _reference_ddim(x_t, eps, abar_t, abar_s, eta, noise):
    schedule = SimpleNamespace(alpha_bar=torch.tensor([abar_s, abar_t], dtype=torch.float64))
    return ddim_step(schedule, x_t, 1, 0 if abar_s < 1 else -1, eps, eta, noise)


@checker(nudge="first estimate the clean image from the noise guess, then rebuild the sample at the earlier step "
               "from that estimate and the same noise guess; the fresh noise's size grows with eta, and the noise "
               "guess's share shrinks to make room for it.",
         formula="x̂0 = (x_t − √(1 − ᾱ_t) ε) / √ᾱ_t; σ = η √((1 − ᾱ_s) / (1 − ᾱ_t)) √(1 − ᾱ_t / ᾱ_s); x_s = √ᾱ_s "
                 "x̂0 + √(1 − ᾱ_s − σ²) ε + σ z. API: math.sqrt (the ᾱ values are floats).")
def check_ddim_step(student_fn, hints: Hints) -> bool | None:
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
    return run_check("ddim_step", student_fn, cases, tensor_comparer(1e-6, 1e-8), hints)


def _v_specs():
    """(name, schedule, shape, steps): the course's schedule and the zero-terminal-SNR one, whose last abar is 0."""
    lin, zero = Schedule(), Schedule(zero_terminal_snr=True)
    return [
        ("a batch of 3 at steps 0, 75 and 149, the course's schedule", lin, (3, 1, 4, 4), [0, 75, 149]),
        ("the zero-terminal-SNR schedule, steps 10 and 100", zero, (2, 1, 4, 4), [10, 100]),
        ("its last step, abar = 0: the image is pure noise", zero, (2, 1, 3, 3), [149, 149]),
        ("step 0 (almost no noise)", zero, (2, 1, 3, 3), [0, 0]),
        ("one 16x16 image", lin, (1, 1, 16, 16), [60]),
    ]


def v_target_cases() -> list[Case]:
    cases = []
    for k, (name, sched, shape, t) in enumerate(_v_specs()):
        g = torch.Generator().manual_seed(930 + k)
        x0, noise, t = torch.randn(*shape, generator=g).clamp(-1, 1), torch.randn(*shape, generator=g), torch.tensor(t)
        cases.append(Case(name, {"x0": x0, "noise": noise, "t": t, "alpha_bar": sched.alpha_bar},
                          sched.target(x0, noise, t, "v"),
                          shown={"alpha_bar": f"Schedule({'zero_terminal_snr=True' if sched.zero_terminal_snr else ''})"
                                              ".alpha_bar"}))
    return cases


@checker(nudge="v mixes the same two ingredients as x_t, the noise and the clean image, with the same two scales, "
               "but swapped and with a minus sign: the noise gets the signal's scale, the image the noise's scale.",
         formula="v = √ᾱ_t · ε − √(1 − ᾱ_t) · x0. API: alpha_bar[t].view(-1, 1, 1, 1) gives one ᾱ per image; "
                 ".sqrt().")
def check_v_target(student_fn, hints: Hints) -> bool | None:
    """``v_target(x0, noise, t, alpha_bar)``: v = sqrt(abar_t) noise - sqrt(1 - abar_t) x0, as ``Schedule.target``."""
    return run_check("v_target", student_fn, v_target_cases(), tensor_comparer(1e-5, 1e-6), hints)


def x0_from_v_cases() -> list[Case]:
    cases = []
    for k, (name, sched, shape, t) in enumerate(_v_specs()):
        g = torch.Generator().manual_seed(950 + k)
        x_t, v, t = torch.randn(*shape, generator=g), torch.randn(*shape, generator=g), torch.tensor(t)
        cases.append(Case(name, {"x_t": x_t, "v": v, "t": t, "alpha_bar": sched.alpha_bar},
                          sched.eps_x0(x_t, t, v, "v")[1],
                          shown={"alpha_bar": f"Schedule({'zero_terminal_snr=True' if sched.zero_terminal_snr else ''})"
                                              ".alpha_bar"}))
    return cases


@checker(nudge="write x_t and v as the two mixtures of the image and the noise, and combine them so that the noise "
               "cancels; since the two scales squared add up to one, no division is needed, so the answer holds "
               "where abar_t is zero too.",
         formula="with a = √ᾱ_t and b = √(1 − ᾱ_t): x_t = a x0 + b ε and v = a ε − b x0, a² + b² = 1, so "
                 "x0 = a x_t − b v (and ε = b x_t + a v).")
def check_x0_from_v(student_fn, hints: Hints) -> bool | None:
    """``x0_from_v(x_t, v, t, alpha_bar)``: the clean-image estimate sqrt(abar_t) x_t - sqrt(1 - abar_t) v, as
    ``Schedule.eps_x0(..., prediction="v")``."""
    return run_check("x0_from_v", student_fn, x0_from_v_cases(), tensor_comparer(1e-5, 1e-6), hints)
