"""Notebook 01's checked exercises: the forward process ``q_sample`` and one DDPM reverse step.

Both are checked against :class:`course_utils.diffusion.Schedule` (``q_sample`` and ``p_step`` with
sigma_t^2 = beta_t), on the course's schedule and on another one, with t = 0 and t = T-1 among the cases.
"""
from __future__ import annotations

import torch

from course_utils.diffusion import Schedule
from course_utils.exercises.checking import Case, run_check, tensor_comparer


def _randn(*shape, seed):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def q_sample_cases() -> list[Case]:
    course, other = Schedule(T=150, beta_start=1e-4, beta_end=0.02), Schedule(T=50, beta_end=0.05)
    specs = [
        ("a batch of 3 images at steps 0, 75 and 149", course, (3, 1, 4, 4), [0, 75, 149], "random"),
        ("t = 0 for every image (almost no noise yet)", course, (2, 1, 3, 3), [0, 0], "random"),
        ("t = T-1 = 149 for every image (the noisiest step)", course, (2, 1, 3, 3), [149, 149], "random"),
        ("one 16x16 image at t = 60", course, (1, 1, 16, 16), [60], "random"),
        ("zero noise: x_t = sqrt(abar_t) x0", course, (2, 1, 2, 2), [10, 120], "zeros"),
        ("3-channel images", course, (2, 3, 4, 4), [5, 140], "random"),
        ("another schedule: T = 50, beta_end = 0.05", other, (2, 1, 4, 4), [10, 49], "random"),
    ]
    cases = []
    for k, (name, sched, shape, t, kind) in enumerate(specs):
        x0 = _randn(*shape, seed=100 + k).clamp(-1, 1)
        noise = _randn(*shape, seed=200 + k) if kind == "random" else torch.zeros(shape)
        t = torch.tensor(t)
        cases.append(Case(name, {"x0": x0, "t": t, "noise": noise, "alpha_bar": sched.alpha_bar},
                          sched.q_sample(x0, t, noise),
                          shown={"alpha_bar": f"Schedule(T={sched.T}, beta_end={sched.beta_end}).alpha_bar "
                                              f"(shape ({sched.T},))"}))
    return cases


def check_q_sample(student_fn) -> bool | None:
    """``q_sample(x0, t, noise, alpha_bar)``: x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise, one t per image."""
    return run_check("q_sample", student_fn, q_sample_cases(), tensor_comparer(1e-5, 1e-6),
                     hint="pick each image's abar with alpha_bar[t], reshape it to (B, 1, 1, 1) with .view(-1, 1, 1, 1) "
                          "so it broadcasts over the image, and take square roots of abar and 1 - abar.")


def reverse_step_cases() -> list[Case]:
    course, other = Schedule(T=150, beta_start=1e-4, beta_end=0.02), Schedule(T=50, beta_end=0.05)
    specs = [
        ("a batch of 3 at steps 149, 75 and 10", course, (3, 1, 4, 4), [149, 75, 10]),
        ("t = 0 beside t = 1: no noise is added at t = 0", course, (2, 1, 3, 3), [0, 1]),
        ("t = 0 for every image (the last step: the mean only)", course, (2, 1, 3, 3), [0, 0]),
        ("one 16x16 image at t = 149", course, (1, 1, 16, 16), [149]),
        ("3-channel images", course, (2, 3, 4, 4), [3, 100]),
        ("another schedule: T = 50, beta_end = 0.05", other, (2, 1, 4, 4), [49, 1]),
    ]
    cases = []
    for k, (name, sched, shape, t) in enumerate(specs):
        x_t, eps, z = (_randn(*shape, seed=300 + 10 * k + j) for j in range(3))
        t = torch.tensor(t)
        cases.append(Case(name, {"x_t": x_t, "t": t, "eps": eps, "z": z, "betas": sched.betas,
                                 "alpha_bar": sched.alpha_bar},
                          sched.p_step(x_t, t, eps, z, sigma="beta"),
                          shown={"betas": f"Schedule(T={sched.T}, beta_end={sched.beta_end}).betas (shape ({sched.T},))",
                                 "alpha_bar": f"the same schedule's alpha_bar (shape ({sched.T},))"}))
    return cases


def check_reverse_step(student_fn) -> bool | None:
    """``reverse_step(x_t, t, eps, z, betas, alpha_bar)``: one DDPM step with sigma_t = sqrt(beta_t), no noise at t = 0."""
    return run_check("reverse_step", student_fn, reverse_step_cases(), tensor_comparer(1e-5, 1e-5),
                     hint="mean = (x_t - beta_t / sqrt(1 - abar_t) * eps) / sqrt(alpha_t) with alpha_t = 1 - beta_t; "
                          "add sqrt(beta_t) * z only for the images whose t > 0 (e.g. multiply by (t > 0).float()).")
