"""The noise schedule (notebook 09): what each schedule does to an image, and why the original's x_T is not noise.

The original course noises with beta linear from 1e-4 to 0.02 over T = 150 steps. Its last step keeps
abar_T ~ 0.22 of the image's variance (sqrt(abar_T) ~ 0.47 of its amplitude), yet sampling starts from pure
N(0, I) noise. These pure functions compute the numbers and pictures the notebook shows:

- :func:`curves`: alpha_bar_t, beta_t and SNR_t = abar_t / (1 - abar_t) for each schedule;
- :func:`terminal`: abar_T and the terminal SNR (and SNR_0) per schedule;
- :func:`noised`: x_t of given images at several t under each schedule, with the same noise throughout;
- :func:`mismatch`: x_T of real images under a schedule beside N(0, I): per-pixel mean and spread;
- :func:`true_start`: x_T drawn from the true marginal q(x_T) of held-out images (a diagnostic start for sampling).

A schedule is named by one of :data:`SETTINGS`, the U-Net config fields that select it (the same fields a
checkpoint stores), so ``build(preset, **SETTINGS[name])`` makes a model for it.
"""
from __future__ import annotations

import torch

from course_utils.diffusion import Schedule
from course_utils.errors import CourseError

# name -> the UNetConfig fields that select the schedule (zero terminal SNR needs v-prediction)
SETTINGS: dict[str, dict] = {
    "linear": {"schedule": "linear"},
    "cosine": {"schedule": "cosine"},
    "linear_scaled": {"schedule": "linear_scaled"},
    "linear_zero_snr": {"schedule": "linear", "zero_terminal_snr": True, "prediction": "v"},
}


def _names(names) -> list[str]:
    names = list(SETTINGS) if names is None else [names] if isinstance(names, str) else list(names)
    for n in names:
        if n not in SETTINGS:
            raise CourseError(f"unknown schedule setting {n!r}; choose from {', '.join(SETTINGS)}.")
    return names


def schedule_of(name: str, T: int = 150) -> Schedule:
    """The :class:`Schedule` of the setting ``name`` (one of :data:`SETTINGS`) with T steps."""
    s = SETTINGS[_names(name)[0]]
    return Schedule(T=T, kind=s["schedule"], zero_terminal_snr=s.get("zero_terminal_snr", False))


def curves(names=None, T: int = 150) -> dict[str, dict[str, torch.Tensor]]:
    """For each schedule: ``t`` (0..T-1), ``alpha_bar``, ``beta`` and ``snr`` (abar / (1 - abar)), each of length T."""
    out = {}
    for n in _names(names):
        s = schedule_of(n, T)
        out[n] = {"t": torch.arange(T), "alpha_bar": s.alpha_bar.clone(), "beta": s.betas.clone(),
                  "snr": s.snr.clone()}
    return out


def terminal(names=None, T: int = 150) -> dict[str, dict[str, float]]:
    """For each schedule, as floats: ``alpha_bar_T`` and ``signal_T`` = sqrt(abar_T) (the share of the image's
    amplitude left at the last step), ``snr_T`` (0 exactly only with the zero-terminal-SNR rescale) and ``snr_0``."""
    out = {}
    for n in _names(names):
        s = schedule_of(n, T)
        out[n] = {"alpha_bar_T": float(s.alpha_bar[-1]), "signal_T": float(s.alpha_bar[-1].sqrt()),
                  "snr_T": float(s.snr[-1]), "snr_0": float(s.snr[0])}
    return out


def _check_images(images: torch.Tensor) -> None:
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or not images.is_floating_point() or not len(images):
        raise CourseError("images must be a float tensor (N, C, H, W) with N >= 1, e.g. "
                          "course_utils.data.load('test').images[:8].")


def noised(images: torch.Tensor, ts=(0, 25, 50, 100, 149), names=None, seed: int = 0,
           T: int = 150) -> dict[str, torch.Tensor]:
    """x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps of ``images`` (N, C, H, W) at each step of ``ts``, per schedule:
    a tensor (len(ts), N, C, H, W). One noise eps per image, drawn from ``seed``, is used for every t and every
    schedule, so the pictures differ only in how much of the image each schedule keeps."""
    _check_images(images)
    ts = [int(t) for t in ts]
    if not ts or min(ts) < 0 or max(ts) >= T:
        raise CourseError(f"the steps ts must lie in [0, {T - 1}], got {ts}.")
    x0 = images.detach().float().cpu()
    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed))
    out = {}
    for n in _names(names):
        s = schedule_of(n, T)
        out[n] = torch.stack([s.q_sample(x0, torch.full((len(x0),), t), eps) for t in ts])
    return out


def mismatch(images: torch.Tensor, name: str = "linear", seed: int = 0, T: int = 150) -> dict:
    """x_T (the last step, t = T-1) of real ``images`` under schedule ``name``, beside N(0, I), which sampling
    starts from.

    Returns ``x_T`` (N, C, H, W) and ``noise`` (the same shape, N(0, I) from the same generator, for a histogram
    beside it); per pixel over the images, ``pixel_mean`` and ``pixel_std`` (C, H, W) of x_T (pure noise: 0 and 1);
    and floats: ``mean`` and ``std`` of all x_T values, ``pixel_mean_min``/``pixel_mean_max``,
    ``pixel_std_min``/``pixel_std_max``, ``alpha_bar_T``, ``snr_T``, and the same ``noise_mean`` and ``noise_std``
    of the N(0, I) draw. With zero terminal SNR, x_T is that noise exactly.
    """
    _check_images(images)
    s = schedule_of(name, T)
    x0 = images.detach().float().cpu()
    gen = torch.Generator().manual_seed(seed)
    eps = torch.randn(x0.shape, generator=gen)
    noise = torch.randn(x0.shape, generator=gen)
    x_T = s.q_sample(x0, torch.full((len(x0),), T - 1), eps)
    pm = x_T.mean(0)
    ps = x_T.std(0, unbiased=False)
    return {"x_T": x_T, "noise": noise, "pixel_mean": pm, "pixel_std": ps,
            "mean": float(x_T.mean()), "std": float(x_T.std(unbiased=False)),
            "pixel_mean_min": float(pm.min()), "pixel_mean_max": float(pm.max()),
            "pixel_std_min": float(ps.min()), "pixel_std_max": float(ps.max()),
            "alpha_bar_T": float(s.alpha_bar[-1]), "snr_T": float(s.snr[-1]),
            "noise_mean": float(noise.mean()), "noise_std": float(noise.std(unbiased=False))}


def true_start(images: torch.Tensor, name: str = "linear", seed: int = 0, T: int = 150) -> torch.Tensor:
    """x_T ~ q(x_T | x_0) for each of ``images`` (held-out images, e.g. the test split): a start for the reverse
    process that has exactly the statistics the network saw at t = T-1 in training, unlike N(0, I).

    A diagnostic, not a sampler: the samples it gives keep a trace of those images (sqrt(abar_T) of them), so it
    tells whether the start is to blame for what the samples lack, and its FID must never be reported as a model's."""
    _check_images(images)
    s = schedule_of(name, T)
    x0 = images.detach().float().cpu()
    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed))
    return s.q_sample(x0, torch.full((len(x0),), T - 1), eps)
