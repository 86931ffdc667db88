"""DDPM: the linear noise schedule, forward noising q(x_t | x_0) and the reverse sampler.

Settings follow the original course: T = 150 steps, beta linear from 1e-4 to 0.02, the network
predicts the noise epsilon. The reverse step uses sigma_t^2 = beta_t by default (Ho et al., 2020);
``sigma="beta_tilde"`` uses the posterior variance beta~_t = beta_t (1 - abar_{t-1}) / (1 - abar_t).
The original course added noise with beta_{t-1} at step t - an off-by-one that makes the last
noisy step (t = 1) add noise scaled for t = 0; both choices here use the variance of step t itself.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .errors import CourseError

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


def _model_device(model: torch.nn.Module) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


@torch.no_grad()
def sample(model: torch.nn.Module, n: int = 16, schedule: Schedule | None = None, seed: int | None = 0,
           sigma: str = "beta", frames: int = 0, labels: torch.Tensor | None = None, guidance: float = 0.0,
           progress: bool = False, device: torch.device | str | None = None):
    """Draw ``n`` images by running the reverse process from pure noise.

    ``seed`` makes the result reproducible (bitwise on the CPU). ``frames`` > 0 also returns that many
    intermediate x_t snapshots, evenly spaced from t = T-1 to t = 0, as a tensor (frames, n, C, H, W)
    together with the timesteps they show. ``labels`` and ``guidance`` are for class-conditional
    models (classifier-free guidance).
    """
    if sigma not in SIGMAS:
        raise CourseError(f"unknown sampler variance {sigma!r}; choose one of {SIGMAS}.")
    if n < 1:
        raise CourseError(f"the number of samples must be at least 1, got {n}.")
    cfg = getattr(model, "config", None)
    schedule = schedule or Schedule(T=getattr(cfg, "T", 150))
    device = torch.device(device) if device is not None else _model_device(model)
    shape = (n, getattr(cfg, "img_channels", 1), getattr(cfg, "img_size", 16), getattr(cfg, "img_size", 16))
    gen = torch.Generator(device=device)
    gen.manual_seed(int(seed) if seed is not None else torch.seed())
    was_training = model.training
    model.eval()
    x = torch.randn(shape, generator=gen, device=device)
    keep = set()
    if frames:
        keep = {int(round(v)) for v in torch.linspace(schedule.T - 1, 0, frames).tolist()}
    snaps, snap_t = [], []
    steps = range(schedule.T - 1, -1, -1)
    if progress:
        from tqdm.auto import tqdm
        steps = tqdm(steps, desc="sampling", leave=False)
    for i in steps:
        t = torch.full((n,), i, device=device, dtype=torch.long)
        if labels is not None:
            eps_c = model(x, t, labels.to(device), torch.ones(n, device=device))
            if guidance:
                eps_u = model(x, t, labels.to(device), torch.zeros(n, device=device))
                eps = (1 + guidance) * eps_c - guidance * eps_u
            else:
                eps = eps_c
        else:
            eps = model(x, t)
        z = torch.randn(shape, generator=gen, device=device) if i > 0 else None
        x = schedule.p_step(x, t, eps, z, sigma)
        if i in keep:
            snaps.append(x.detach().cpu().clone())
            snap_t.append(i)
    model.train(was_training)
    x = x.clamp(-1, 1).cpu()
    if frames:
        return x, torch.stack(snaps), snap_t
    return x
