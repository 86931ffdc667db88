"""DDPM: the linear noise schedule, forward noising q(x_t | x_0) and the reverse samplers (DDPM and DDIM).

Settings follow the original course: T = 150 steps, beta linear from 1e-4 to 0.02, the network
predicts the noise epsilon. The reverse step uses sigma_t^2 = beta_t by default (Ho et al., 2020);
``sigma="beta_tilde"`` uses the posterior variance beta~_t = beta_t (1 - abar_{t-1}) / (1 - abar_t).
The original course added noise with beta_{t-1} at step t - an off-by-one that makes the last
noisy step (t = 1) add noise scaled for t = 0; both choices here use the variance of step t itself.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from course_utils.errors import CourseError

SIGMAS = ("beta", "beta_tilde")


@dataclass
class Schedule:
    T: int = 150
    beta_start: float = 1e-4
    beta_end: float = 0.02

    def __post_init__(self):
        if self.T < 2:
            raise CourseError(f"the schedule needs T >= 2 steps, got {self.T}.")
        if not 0 < self.beta_start <= self.beta_end < 1:
            raise CourseError(f"need 0 < beta_start <= beta_end < 1, got {self.beta_start}, {self.beta_end}.")
        self.betas = torch.linspace(self.beta_start, self.beta_end, self.T)
        self.alphas = 1.0 - self.betas
        self.alpha_bar = torch.cumprod(self.alphas, 0)
        abar_prev = torch.cat([torch.ones(1), self.alpha_bar[:-1]])
        self.beta_tilde = self.betas * (1 - abar_prev) / (1 - self.alpha_bar)

    def _at(self, values: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return values.to(like.device)[t.long().to(like.device)].view(-1, *([1] * (like.ndim - 1))).to(like.dtype)

    def check_t(self, t: torch.Tensor) -> None:
        if not isinstance(t, torch.Tensor) or t.ndim != 1:
            raise CourseError(f"timesteps must be a 1-D tensor (one per image), got "
                              f"{tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__}.")
        if t.numel() and (int(t.min()) < 0 or int(t.max()) >= self.T):
            raise CourseError(f"timesteps must lie in [0, {self.T - 1}], got {int(t.min())}..{int(t.max())}.")

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """Forward process: x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps."""
        self.check_t(t)
        if noise is None:
            noise = torch.randn_like(x0)
        ab = self._at(self.alpha_bar, t, x0)
        return ab.sqrt() * x0 + (1 - ab).sqrt() * noise

    def sigma(self, t: torch.Tensor, like: torch.Tensor, kind: str = "beta") -> torch.Tensor:
        if kind == "beta":
            return self._at(self.betas, t, like).sqrt()
        if kind == "beta_tilde":
            return self._at(self.beta_tilde, t, like).sqrt()
        raise CourseError(f"unknown sampler variance {kind!r}; choose one of {SIGMAS}.")

    def p_step(self, x_t: torch.Tensor, t: torch.Tensor, eps: torch.Tensor, noise: torch.Tensor | None,
               sigma: str = "beta") -> torch.Tensor:
        """One reverse step: mean (x_t - beta_t / sqrt(1 - abar_t) eps) / sqrt(alpha_t), plus sigma_t z (none at t=0)."""
        b = self._at(self.betas, t, x_t)
        a = self._at(self.alphas, t, x_t)
        ab = self._at(self.alpha_bar, t, x_t)
        mean = (x_t - b / (1 - ab).sqrt() * eps) / a.sqrt()
        if noise is None:
            return mean
        nonzero = (t > 0).to(x_t.dtype).view(-1, *([1] * (x_t.ndim - 1))).to(x_t.device)
        return mean + nonzero * self.sigma(t, x_t, sigma) * noise


SAMPLERS = ("ddpm", "ddim")


def ddim_timesteps(T: int, steps: int) -> list[int]:
    """``steps`` timesteps from T-1 down to 0, evenly spaced (rounded; the first is T-1, the last 0)."""
    if not isinstance(steps, int) or not 1 <= steps <= T:
        raise CourseError(f"DDIM needs between 1 and T={T} steps, got {steps!r}. Fix: e.g. steps=25.")
    if steps == 1:
        return [T - 1]
    return sorted({int(round(v)) for v in torch.linspace(T - 1, 0, steps).tolist()}, reverse=True)


def ddim_step(schedule: Schedule, x_t: torch.Tensor, t: int, s: int, eps: torch.Tensor, eta: float = 0.0,
              noise: torch.Tensor | None = None) -> torch.Tensor:
    """One DDIM step (Song et al., 2021) from step ``t`` to an earlier step ``s`` (``s = -1``: to the image x_0).

    The network's noise guess gives an estimate of the clean image, x0 = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t);
    the step moves to abar_s along that estimate: x_s = sqrt(abar_s) x0 + sqrt(1 - abar_s - sigma^2) eps + sigma z,
    with sigma = eta * sqrt((1 - abar_s) / (1 - abar_t)) * sqrt(1 - abar_t / abar_s). eta = 0 is deterministic;
    eta = 1 with s = t - 1 is DDPM's step with the posterior variance beta~_t (``sigma="beta_tilde"``).
    """
    ab_t = schedule.alpha_bar[t].item()
    ab_s = schedule.alpha_bar[s].item() if s >= 0 else 1.0
    x0 = (x_t - (1 - ab_t) ** 0.5 * eps) / ab_t ** 0.5
    sigma = eta * ((1 - ab_s) / (1 - ab_t) * (1 - ab_t / ab_s)) ** 0.5
    x_s = ab_s ** 0.5 * x0 + max(1 - ab_s - sigma ** 2, 0.0) ** 0.5 * eps
    if sigma > 0 and noise is not None:
        x_s = x_s + sigma * noise
    return x_s


def _model_device(model: torch.nn.Module) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def _guided_eps(model, x, t, labels, guidance):
    """The network's noise guess; with ``labels``, classifier-free guidance (1 + w) e_cond - w e_uncond."""
    if labels is None:
        return model(x, t)
    n = x.shape[0]
    eps_c = model(x, t, labels, torch.ones(n, device=x.device))
    if not guidance:
        return eps_c
    eps_u = model(x, t, labels, torch.zeros(n, device=x.device))
    return (1 + guidance) * eps_c - guidance * eps_u


@torch.no_grad()
def sample(model: torch.nn.Module, n: int = 16, schedule: Schedule | None = None, seed: int | None = 0,
           sigma: str = "beta", frames: int = 0, labels: torch.Tensor | None = None, guidance: float = 0.0,
           progress: bool = False, device: torch.device | str | None = None, sampler: str = "ddpm",
           steps: int | None = None, eta: float = 0.0):
    """Draw ``n`` images by running the reverse process from pure noise.

    ``sampler="ddpm"`` (default) takes all T ancestral steps with variance ``sigma`` ("beta" or "beta_tilde").
    ``sampler="ddim"`` takes ``steps`` (default 25) evenly spaced DDIM steps with noise level ``eta``
    (0: deterministic; 1: as much noise as DDPM's posterior). ``seed`` makes the result reproducible
    (bitwise on the CPU). ``frames`` > 0 also returns that many intermediate x_t snapshots, evenly spaced over
    the steps taken, as a tensor (frames, n, C, H, W) together with the timesteps they show. ``labels`` and
    ``guidance`` are for class-conditional models (classifier-free guidance).
    """
    if sampler not in SAMPLERS:
        raise CourseError(f"unknown sampler {sampler!r}; choose one of {SAMPLERS}.")
    if sigma not in SIGMAS:
        raise CourseError(f"unknown sampler variance {sigma!r}; choose one of {SIGMAS}.")
    if not isinstance(n, int) or n < 1:
        raise CourseError(f"the number of samples must be a whole number >= 1, got {n!r}.")
    if not (isinstance(eta, (int, float)) and 0 <= eta <= 1):
        raise CourseError(f"DDIM's eta must lie in [0, 1] (0: deterministic, 1: DDPM-like noise), got {eta!r}.")
    cfg = getattr(model, "config", None)
    schedule = schedule or Schedule(T=getattr(cfg, "T", 150))
    if sampler == "ddpm":
        if steps not in (None, schedule.T):
            raise CourseError(f"the DDPM sampler takes all T={schedule.T} steps, got steps={steps}. Fix: leave steps "
                              "out, or use sampler='ddim' for fewer steps.")
        times = list(range(schedule.T - 1, -1, -1))
    else:
        times = ddim_timesteps(schedule.T, 25 if steps is None else steps)
    device = torch.device(device) if device is not None else _model_device(model)
    shape = (n, getattr(cfg, "img_channels", 1), getattr(cfg, "img_size", 16), getattr(cfg, "img_size", 16))
    gen = torch.Generator(device=device)
    gen.manual_seed(int(seed) if seed is not None else torch.seed())
    was_training = model.training
    model.eval()
    x = torch.randn(shape, generator=gen, device=device)
    if labels is not None:
        labels = labels.to(device)
    keep = set()
    if frames:
        keep = {times[int(round(v))] for v in torch.linspace(0, len(times) - 1, frames).tolist()}
    snaps, snap_t = [], []
    it = range(len(times))
    if progress:
        from tqdm.auto import tqdm
        it = tqdm(it, desc=f"sampling ({sampler}, {len(times)} steps)", leave=False)
    for k in it:
        i = times[k]
        t = torch.full((n,), i, device=device, dtype=torch.long)
        eps = _guided_eps(model, x, t, labels, guidance)
        if sampler == "ddpm":
            z = torch.randn(shape, generator=gen, device=device) if i > 0 else None
            x = schedule.p_step(x, t, eps, z, sigma)
        else:
            s = times[k + 1] if k + 1 < len(times) else -1
            z = torch.randn(shape, generator=gen, device=device) if eta > 0 and s >= 0 else None
            x = ddim_step(schedule, x, i, s, eps, eta, z)
        if i in keep:
            snaps.append(x.detach().cpu().clone())
            snap_t.append(i)
    model.train(was_training)
    x = x.clamp(-1, 1).cpu()
    if frames:
        return x, torch.stack(snaps), snap_t
    return x
