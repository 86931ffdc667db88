"""DDPM: the noise schedules, forward noising q(x_t | x_0), the prediction targets and the reverse samplers.

Settings follow the original course: T = 150 steps, beta linear from 1e-4 to 0.02, the network
predicts the noise epsilon. That stays the default, bit for bit; notebook 09 measures the alternatives:

- ``kind="cosine"`` (Nichol & Dhariwal, 2021): abar(t) = f(t) / f(0), f(t) = cos^2(((t/T) + s) / (1 + s) * pi/2),
  s = 0.008, each beta clipped at 0.999;
- ``kind="linear_scaled"``: the DDPM paper's linear schedule (1e-4..0.02 over T = 1000) scaled to this T,
  beta from 1e-4 * 1000/T to 0.02 * 1000/T, so the total noise added roughly matches T = 1000's;
- ``zero_terminal_snr=True`` (Lin et al., 2024, Algorithm 1), on any of them: sqrt(abar) is shifted and scaled so
  that its last value is exactly 0 and its first is unchanged, so x_{T-1} is pure noise, exactly what sampling
  starts from. It needs v-prediction (see :data:`PREDICTIONS`).

The network's output is either the noise ("eps") or the velocity v = sqrt(abar) eps - sqrt(1 - abar) x0
("v", Salimans & Ho, 2022). :meth:`Schedule.eps_x0` turns either into both the noise and the clean image.

The reverse step uses sigma_t^2 = beta_t by default (Ho et al., 2020);
``sigma="beta_tilde"`` uses the posterior variance beta~_t = beta_t (1 - abar_{t-1}) / (1 - abar_t).
The original course added noise with beta_{t-1} at step t - an off-by-one that makes the last
noisy step (t = 1) add noise scaled for t = 0; both choices here use the variance of step t itself.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
from tqdm.auto import tqdm

from course_utils.errors import CourseError

SIGMAS = ("beta", "beta_tilde")
SCHEDULES = ("linear", "cosine", "linear_scaled")
PREDICTIONS = ("eps", "v")
COSINE_S = 0.008
MAX_BETA = 0.999
T_DEFAULT = 150


def check_prediction(prediction: str) -> None:
    if prediction not in PREDICTIONS:
        raise CourseError(f"unknown prediction target {prediction!r}; choose one of {PREDICTIONS} "
                          "('eps': the noise, 'v': sqrt(abar) eps - sqrt(1 - abar) x0).")


@dataclass(frozen=True)
class DiffusionConfig:
    """The diffusion process a network is trained for, held by its U-Net config (``UNetConfig.diffusion``, and so
    stored in every checkpoint) so that a model is never sampled with another process (notebook 09).

    ``schedule`` ("linear": beta from ``beta_start`` to ``beta_end``, the original 1e-4..0.02; "cosine";
    "linear_scaled": beta x 1000/T), ``zero_terminal_snr`` (Lin et al., 2024: rescale that schedule so
    abar_{T-1} = 0), ``prediction`` ("eps": the noise; "v": sqrt(abar) eps - sqrt(1 - abar) x0) and ``T`` steps.
    The rescaling is a separate switch, not a fourth schedule name, because it applies to any base schedule, so
    every combination stays expressible and the config says which base schedule was rescaled. It needs
    ``prediction="v"``: at abar = 0 the input is pure noise, so an eps-network's answer (eps = x_t) says nothing
    about x0 = (x_t - sqrt(1 - abar) eps) / sqrt(abar), a division by zero.
    """

    schedule: str = "linear"          # one of SCHEDULES
    zero_terminal_snr: bool = False   # rescale the schedule to abar_{T-1} = 0 (needs prediction="v")
    prediction: str = "eps"           # one of PREDICTIONS
    T: int = T_DEFAULT                # diffusion steps
    beta_start: float = 1e-4          # the linear schedules' first and last beta (notebook 01's exercise)
    beta_end: float = 0.02

    def validate(self) -> None:
        """Raise a :class:`CourseError` naming the first bad setting and how to fix it."""
        def bad(msg):
            raise CourseError(f"invalid diffusion settings: {msg}")

        if not isinstance(self.T, int) or self.T < 1:
            bad(f"T={self.T!r} must be a whole number >= 1.")
        if self.schedule not in SCHEDULES:
            bad(f"schedule={self.schedule!r}; choose one of {SCHEDULES}.")
        if self.prediction not in PREDICTIONS:
            bad(f"prediction={self.prediction!r}; choose one of {PREDICTIONS}.")
        if not (isinstance(self.beta_start, (int, float)) and isinstance(self.beta_end, (int, float))
                and 0 < self.beta_start <= self.beta_end < 1):
            bad(f"need 0 < beta_start <= beta_end < 1, got beta_start={self.beta_start!r}, beta_end={self.beta_end!r}.")
        if not isinstance(self.zero_terminal_snr, bool):
            bad(f"zero_terminal_snr={self.zero_terminal_snr!r} must be True or False.")
        if self.zero_terminal_snr and self.prediction != "v":
            bad(f"zero_terminal_snr=True needs prediction='v', got prediction={self.prediction!r}: at SNR = 0 the "
                "input x_T is pure noise, so predicting the noise is trivial (eps = x_T) and says nothing about the "
                "image; x0 = (x_T - sqrt(1 - abar) eps) / sqrt(abar) divides by 0. Fix: prediction='v'.")
        if self.schedule == "linear_scaled" and 0.02 * 1000 / self.T >= 1:
            bad(f"schedule='linear_scaled' needs T > 20 (beta_end = 0.02 * 1000 / T < 1), got T={self.T}.")

    def changes(self, other: "DiffusionConfig | None" = None) -> dict:
        """The settings that differ from ``other`` (default: the defaults), by name."""
        other = other or DiffusionConfig()
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) != getattr(other, f.name)}


def diffusion_of(config) -> DiffusionConfig:
    """The :class:`DiffusionConfig` of a U-Net config (or the config itself; ``None``: the defaults)."""
    if config is None:
        return DiffusionConfig()
    if isinstance(config, DiffusionConfig):
        return config
    if isinstance(getattr(config, "diffusion", None), DiffusionConfig):
        return config.diffusion
    raise CourseError(f"expected a UNetConfig or a DiffusionConfig, got {type(config).__name__}. "
                      "Fix: pass model.config.")


@dataclass
class Schedule:
    """The noise levels of the forward process: ``betas``, ``alphas`` = 1 - betas, ``alpha_bar`` (their running
    product) and ``snr`` = abar / (1 - abar), one value per step t = 0..T-1.

    ``kind`` is one of :data:`SCHEDULES`; ``beta_start`` and ``beta_end`` set the linear schedules (the scaled one
    multiplies them by 1000/T) and are ignored by the cosine one. ``zero_terminal_snr`` rescales any of them to
    abar_{T-1} = 0. Build the schedule a model was trained with by :meth:`from_config`.
    """

    T: int = 150
    beta_start: float = 1e-4
    beta_end: float = 0.02
    kind: str = "linear"
    zero_terminal_snr: bool = False

    def __post_init__(self):
        if self.T < 2:
            raise CourseError(f"the schedule needs T >= 2 steps, got {self.T}.")
        if self.kind not in SCHEDULES:
            raise CourseError(f"unknown noise schedule {self.kind!r}; choose one of {SCHEDULES}.")
        if not 0 < self.beta_start <= self.beta_end < 1:
            raise CourseError(f"need 0 < beta_start <= beta_end < 1, got {self.beta_start}, {self.beta_end}.")
        if self.kind == "linear_scaled" and self.beta_end * 1000 / self.T >= 1:
            raise CourseError(f"the scaled linear schedule needs beta_end * 1000 / T < 1, got "
                              f"{self.beta_end} * 1000 / {self.T} = {self.beta_end * 1000 / self.T:.3g}. "
                              f"Fix: T > {int(self.beta_end * 1000)}, or kind='linear'.")
        if self.kind == "linear" and not self.zero_terminal_snr:
            # the original course's schedule, computed exactly as it always was (float32, bit for bit)
            self.betas = torch.linspace(self.beta_start, self.beta_end, self.T)
            self.alphas = 1.0 - self.betas
            self.alpha_bar = torch.cumprod(self.alphas, 0)
            abar = torch.cumprod(1.0 - self.betas.double(), 0)
        else:
            abar = self._alpha_bar64()
            if self.zero_terminal_snr:
                abar = rescale_zero_terminal_snr(abar)
            alphas = torch.cat([abar[:1], abar[1:] / abar[:-1]])
            self.betas = (1.0 - alphas).float()
            self.alphas = alphas.float()
            self.alpha_bar = abar.float()
        self.alpha_bar_prev = torch.cat([torch.ones(1), self.alpha_bar[:-1]])
        # the posterior mean's coefficients of x0 and x_t, in float64 first: near t = 0, 1 - abar in float32 loses
        # digits (1 - 0.9999 is 1.00017e-4 there), and the x0 coefficient would be 0.9998 instead of 1
        ab_prev = torch.cat([torch.ones(1, dtype=torch.float64), abar[:-1]])
        self.posterior_x0 = (ab_prev.sqrt() * (1 - abar / ab_prev) / (1 - abar)).float()
        self.posterior_xt = ((abar / ab_prev).sqrt() * (1 - ab_prev) / (1 - abar)).float()
        self.beta_tilde = self.betas * (1 - self.alpha_bar_prev) / (1 - self.alpha_bar)
        ab = self.alpha_bar.double()  # the SNR of exactly the alpha_bar used, without float32 cancellation in 1 - ab
        self.snr = (ab / (1 - ab)).float()

    def _alpha_bar64(self) -> torch.Tensor:
        """The un-rescaled alpha_bar in float64."""
        if self.kind == "cosine":
            s = COSINE_S
            f = torch.cos((torch.arange(self.T + 1, dtype=torch.float64) / self.T + s) / (1 + s) * math.pi / 2) ** 2
            f = f / f[0]
            betas = (1 - f[1:] / f[:-1]).clamp(max=MAX_BETA)
        else:
            scale = 1000 / self.T if self.kind == "linear_scaled" else 1.0
            betas = torch.linspace(self.beta_start * scale, self.beta_end * scale, self.T).double()
        return torch.cumprod(1 - betas, 0)

    @classmethod
    def from_config(cls, config=None) -> "Schedule":
        """The schedule a model config asks for: its diffusion settings' ``T``, ``schedule``, ``zero_terminal_snr``,
        ``beta_start`` and ``beta_end`` (``config``: a UNetConfig, a DiffusionConfig, or ``None`` for the original
        linear schedule)."""
        d = diffusion_of(config)
        return cls(T=d.T, kind=d.schedule, zero_terminal_snr=d.zero_terminal_snr, beta_start=d.beta_start,
                   beta_end=d.beta_end)

    def describe(self) -> str:
        return f"{self.kind}{' + zero terminal SNR' if self.zero_terminal_snr else ''} (T={self.T})"

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

    def target(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor, prediction: str = "eps") -> torch.Tensor:
        """What a network with this ``prediction`` learns to output for x_t = q_sample(x0, t, noise): the noise
        itself ("eps") or the velocity v = sqrt(abar_t) eps - sqrt(1 - abar_t) x0 ("v")."""
        check_prediction(prediction)
        if prediction == "eps":
            return noise
        ab = self._at(self.alpha_bar, t, x0)
        return ab.sqrt() * noise - (1 - ab).sqrt() * x0

    def eps_x0(self, x_t: torch.Tensor, t: torch.Tensor, out: torch.Tensor,
               prediction: str = "eps") -> tuple[torch.Tensor, torch.Tensor]:
        """The noise and clean-image estimates (eps, x0) that a network output ``out`` implies at x_t, step t.

        v: x0 = sqrt(abar) x_t - sqrt(1 - abar) v and eps = sqrt(1 - abar) x_t + sqrt(abar) v (no division, so
        they hold at abar = 0 too). eps: x0 = (x_t - sqrt(1 - abar) eps) / sqrt(abar), which divides by zero at
        abar = 0: there x_t is pure noise, eps = x_t is all a network can say, and it says nothing about x0.
        """
        check_prediction(prediction)
        ab = self._at(self.alpha_bar, t, x_t)
        if prediction == "v":
            return (1 - ab).sqrt() * x_t + ab.sqrt() * out, ab.sqrt() * x_t - (1 - ab).sqrt() * out
        if bool((ab == 0).any()):
            raise CourseError("an eps-prediction gives no clean-image estimate where abar_t = 0 (zero terminal SNR): "
                              "x0 = (x_t - sqrt(1 - abar) eps) / sqrt(abar) divides by 0. Fix: prediction='v'.")
        return out, (x_t - (1 - ab).sqrt() * out) / ab.sqrt()

    def sigma(self, t: torch.Tensor, like: torch.Tensor, kind: str = "beta") -> torch.Tensor:
        if kind == "beta":
            return self._at(self.betas, t, like).sqrt()
        if kind == "beta_tilde":
            return self._at(self.beta_tilde, t, like).sqrt()
        raise CourseError(f"unknown sampler variance {kind!r}; choose one of {SIGMAS}.")

    def p_step(self, x_t: torch.Tensor, t: torch.Tensor, eps: torch.Tensor, noise: torch.Tensor | None,
               sigma: str = "beta", x0: torch.Tensor | None = None) -> torch.Tensor:
        """One reverse step: mean (x_t - beta_t / sqrt(1 - abar_t) eps) / sqrt(alpha_t), plus sigma_t z (none at t=0).

        Given the clean-image estimate ``x0`` (from a v-prediction), the same mean is computed as the posterior
        mean sqrt(abar_{t-1}) beta_t / (1 - abar_t) x0 + sqrt(alpha_t) (1 - abar_{t-1}) / (1 - abar_t) x_t, which
        needs no division by sqrt(alpha_t): it holds at alpha_t = 0 (the last step of a zero-terminal-SNR schedule).
        """
        if x0 is None:
            b = self._at(self.betas, t, x_t)
            a = self._at(self.alphas, t, x_t)
            ab = self._at(self.alpha_bar, t, x_t)
            if bool((a == 0).any()):
                raise CourseError("the eps form of the reverse step divides by sqrt(alpha_t) = 0 at the last step of "
                                  "a zero-terminal-SNR schedule. Fix: pass x0 (prediction='v').")
            mean = (x_t - b / (1 - ab).sqrt() * eps) / a.sqrt()
        else:
            mean = self._at(self.posterior_x0, t, x_t) * x0 + self._at(self.posterior_xt, t, x_t) * x_t
        if noise is None:
            return mean
        nonzero = (t > 0).to(x_t.dtype).view(-1, *([1] * (x_t.ndim - 1))).to(x_t.device)
        return mean + nonzero * self.sigma(t, x_t, sigma) * noise


def rescale_zero_terminal_snr(alpha_bar: torch.Tensor) -> torch.Tensor:
    """Lin et al. (2024), Algorithm 1: shift sqrt(abar) so its last value is 0, then scale it so its first value is
    unchanged. Returns the new alpha_bar (last value exactly 0, so SNR_T = 0; SNR_0 unchanged)."""
    s = alpha_bar.sqrt()
    first, last = s[0].clone(), s[-1].clone()
    s = (s - last) * (first / (first - last))
    return s ** 2


def check_schedule_fits(schedule: Schedule, config) -> None:
    """Refuse a schedule other than the one the model (``config``: its UNetConfig or DiffusionConfig; ``None``: no
    check) was trained with; T may differ (a shorter schedule is a quick, lower-quality sampler used by tests)."""
    if config is None:
        return
    d = diffusion_of(config)
    if (schedule.kind, bool(schedule.zero_terminal_snr)) != (d.schedule, d.zero_terminal_snr):
        raise CourseError(f"the schedule {schedule.describe()} is not the one this model was trained with: "
                          f"{Schedule.from_config(d).describe()} (prediction {d.prediction!r}). Fix: leave "
                          "schedule out (it is built from the model's config), or pass "
                          "Schedule.from_config(model.config).")
    if d.prediction == "eps" and bool((schedule.alpha_bar == 0).any()):
        raise CourseError("a zero-terminal-SNR schedule needs a v-prediction model; this one predicts eps. "
                          "Fix: prediction='v'.")


SAMPLERS = ("ddpm", "ddim")


def describe_sampler(sampler: str = "ddpm", steps: int | None = None, eta: float = 0.0, T: int = 150) -> str:
    """'DDPM, 150 steps' or 'DDIM, 25 steps, eta 1' (DDIM's default is 25 steps)."""
    if sampler == "ddpm":
        return f"DDPM, {T} steps"
    return f"DDIM, {steps or 25} steps, eta {eta:g}"


def ddim_timesteps(T: int, steps: int) -> list[int]:
    """``steps`` timesteps from T-1 down to 0, evenly spaced (rounded; the first is T-1, the last 0)."""
    if not isinstance(steps, int) or not 1 <= steps <= T:
        raise CourseError(f"DDIM needs between 1 and T={T} steps, got {steps!r}. Fix: e.g. steps=25.")
    if steps == 1:
        return [T - 1]
    return sorted({int(round(v)) for v in torch.linspace(T - 1, 0, steps).tolist()}, reverse=True)


def ddim_step(schedule: Schedule, x_t: torch.Tensor, t: int, s: int, eps: torch.Tensor, eta: float = 0.0,
              noise: torch.Tensor | None = None, x0: torch.Tensor | None = None) -> torch.Tensor:
    """One DDIM step (Song et al., 2021) from step ``t`` to an earlier step ``s`` (``s = -1``: to the image x_0).

    The network's noise guess gives an estimate of the clean image, x0 = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t);
    the step moves to abar_s along that estimate: x_s = sqrt(abar_s) x0 + sqrt(1 - abar_s - sigma^2) eps + sigma z,
    with sigma = eta * sqrt((1 - abar_s) / (1 - abar_t)) * sqrt(1 - abar_t / abar_s). eta = 0 is deterministic;
    eta = 1 with s = t - 1 is DDPM's step with the posterior variance beta~_t (``sigma="beta_tilde"``).
    ``x0`` (from a v-prediction, see :meth:`Schedule.eps_x0`) replaces that estimate; it is required where
    abar_t = 0 (the first step of a zero-terminal-SNR schedule), where the division above is by zero.
    """
    ab_t = schedule.alpha_bar[t].item()
    ab_s = schedule.alpha_bar[s].item() if s >= 0 else 1.0
    if x0 is None:
        if ab_t == 0:
            raise CourseError("DDIM cannot recover x0 from an eps-prediction at abar_t = 0 (zero terminal SNR): "
                              "x0 = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t) divides by 0. Fix: pass x0 "
                              "(prediction='v').")
        x0 = (x_t - (1 - ab_t) ** 0.5 * eps) / ab_t ** 0.5
    sigma = eta * ((1 - ab_s) / (1 - ab_t) * (1 - ab_t / ab_s)) ** 0.5
    x_s = ab_s ** 0.5 * x0 + max(1 - ab_s - sigma ** 2, 0.0) ** 0.5 * eps
    if sigma > 0 and noise is not None:
        x_s = x_s + sigma * noise
    return x_s


def check_eta(eta: float) -> None:
    if not (isinstance(eta, (int, float)) and 0 <= eta <= 1):
        raise CourseError(f"DDIM's eta must lie in [0, 1] (0: deterministic, 1: DDPM-like noise), got {eta!r}.")


class DDPMSampler:
    """Ancestral sampling (Ho et al., 2020): all T steps, T-1 down to 0, each adding noise of variance ``sigma``
    ("beta": sigma_t^2 = beta_t; "beta_tilde": the posterior variance beta~_t); no noise at the last step."""

    name = "ddpm"

    def __init__(self, sigma: str = "beta"):
        if sigma not in SIGMAS:
            raise CourseError(f"unknown sampler variance {sigma!r}; choose one of {SIGMAS}.")
        self.sigma = sigma

    def timesteps(self, T: int, steps: int | None = None) -> list[int]:
        if steps not in (None, T):
            raise CourseError(f"the DDPM sampler takes all T={T} steps, got steps={steps}. Fix: leave steps "
                              "out, or use sampler='ddim' for fewer steps.")
        return list(range(T - 1, -1, -1))

    def needs_noise(self, t: int, s: int) -> bool:
        return t > 0

    def step(self, schedule: Schedule, x: torch.Tensor, t: int, s: int, eps: torch.Tensor, x0: torch.Tensor | None,
             noise: torch.Tensor | None) -> torch.Tensor:
        """x_{t-1} from x_t (``s`` = t - 1), given the network's noise guess ``eps`` (and clean-image estimate
        ``x0``, used where given: see :meth:`Schedule.p_step`) and the noise to add."""
        return schedule.p_step(x, torch.full((x.shape[0],), t, device=x.device, dtype=torch.long), eps, noise,
                               self.sigma, x0=x0)


class DDIMSampler:
    """DDIM (Song et al., 2021): ``steps`` evenly spaced timesteps (:func:`ddim_timesteps`), each step from t to the
    next one s along the clean-image estimate, with noise level ``eta`` (0: deterministic; 1: as much noise as
    DDPM's posterior)."""

    name = "ddim"

    def __init__(self, steps: int = 25, eta: float = 0.0):
        check_eta(eta)
        self.steps, self.eta = steps, eta

    def timesteps(self, T: int, steps: int | None = None) -> list[int]:
        return ddim_timesteps(T, self.steps)

    def needs_noise(self, t: int, s: int) -> bool:
        return self.eta > 0 and s >= 0

    def step(self, schedule: Schedule, x: torch.Tensor, t: int, s: int, eps: torch.Tensor, x0: torch.Tensor | None,
             noise: torch.Tensor | None) -> torch.Tensor:
        """x_s from x_t (``s = -1``: the image), see :func:`ddim_step`."""
        return ddim_step(schedule, x, t, s, eps, self.eta, noise, x0=x0)


class ClipX0:
    """A sampler whose every step first clamps the clean-image estimate x0 to the pixel range [-1, 1] and takes
    the noise guess that this x0 implies (``clip_denoised`` in Ho et al.'s code): where abar_t is tiny (the cosine
    schedule's last steps, whose beta reaches 0.999) an unclipped eps-step amplifies the network's error."""

    def __init__(self, sampler):
        self.inner = sampler
        self.name = sampler.name

    def timesteps(self, T: int, steps: int | None = None) -> list[int]:
        return self.inner.timesteps(T, steps)

    def needs_noise(self, t: int, s: int) -> bool:
        return self.inner.needs_noise(t, s)

    def step(self, schedule, x, t, s, eps, x0, noise):
        if x0 is None:  # an eps-prediction: its x0 estimate, as Schedule.eps_x0 gives it
            eps, x0 = schedule.eps_x0(x, torch.full((x.shape[0],), t, device=x.device, dtype=torch.long), eps)
        x0 = x0.clamp(-1, 1)
        ab = schedule.alpha_bar[t].item()
        if ab < 1:
            eps = (x - ab ** 0.5 * x0) / (1 - ab) ** 0.5
        return self.inner.step(schedule, x, t, s, eps, x0, noise)


def make_sampler(sampler="ddpm", sigma: str = "beta", steps: int | None = None, eta: float = 0.0,
                 clip_x0: bool = False):
    """The sampler object ``sample`` uses: a name ("ddpm" or "ddim", with its settings) or a sampler object,
    wrapped in :class:`ClipX0` when ``clip_x0``."""
    if isinstance(sampler, str):
        if sampler not in SAMPLERS:
            raise CourseError(f"unknown sampler {sampler!r}; choose one of {SAMPLERS}.")
        if sigma not in SIGMAS:
            raise CourseError(f"unknown sampler variance {sigma!r}; choose one of {SIGMAS}.")
        check_eta(eta)
        sampler = DDPMSampler(sigma) if sampler == "ddpm" else DDIMSampler(25 if steps is None else steps, eta)
    elif not all(callable(getattr(sampler, m, None)) for m in ("timesteps", "needs_noise", "step")):
        raise CourseError(f"sampler must be 'ddpm', 'ddim', DDPMSampler(sigma) or DDIMSampler(steps, eta), got "
                          f"{sampler!r}.")
    return ClipX0(sampler) if clip_x0 else sampler


def _model_device(model: torch.nn.Module) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def guided_output(model, x, t, labels, guidance):
    """The network's output (its noise guess, or its v); with ``labels``, classifier-free guidance
    (Ho & Salimans, 2022): (1 + w) out_cond - w out_uncond, where out_uncond is the output with the label masked
    (linear, so guiding v is guiding the noise it implies). w = 0 is the plain conditional model."""
    if labels is None:
        return model(x, t)
    n = x.shape[0]
    eps_c = model(x, t, labels, torch.ones(n, device=x.device))
    if not guidance:
        return eps_c
    eps_u = model(x, t, labels, torch.zeros(n, device=x.device))
    return (1 + guidance) * eps_c - guidance * eps_u


class Guided:
    """The model's output as the sampler sees it: with ``labels``, classifier-free guidance of weight ``guidance``
    (:func:`guided_output`); without, the plain output."""

    def __init__(self, model: torch.nn.Module, labels: torch.Tensor | None = None, guidance: float = 0.0):
        self.model, self.labels, self.guidance = model, labels, guidance

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return guided_output(self.model, x, t, self.labels, self.guidance)


@dataclass(frozen=True)
class SampleOptions:
    """The options of :func:`sample` besides the model, ``n``, the schedule, the seed and the sampler."""

    sigma: str = "beta"                       # DDPM's variance: "beta" or "beta_tilde"
    steps: int | None = None                  # DDIM's steps (default 25); DDPM takes all T
    eta: float = 0.0                          # DDIM's noise level in [0, 1]
    clip_x0: bool = False                     # clamp the clean-image estimate to [-1, 1] at every step (ClipX0)
    labels: torch.Tensor | None = None        # class labels (a conditional model)
    guidance: float = 0.0                     # classifier-free guidance weight w
    start: torch.Tensor | None = None         # x_T to start from instead of pure noise (a diagnostic)
    frames: int = 0                           # also return that many intermediate x_t and their timesteps
    progress: bool = False                    # a progress bar
    device: torch.device | str | None = None  # default: the model's

    @classmethod
    def of(cls, options: dict) -> "SampleOptions":
        unknown = set(options) - {f.name for f in fields(cls)}
        if unknown:
            raise CourseError(f"unknown sample() option(s) {sorted(unknown)}; known: seed, sampler, "
                              f"{', '.join(f.name for f in fields(cls))}.")
        return cls(**options)


def _start(shape: tuple, gen: torch.Generator, device: torch.device, start: torch.Tensor | None) -> torch.Tensor:
    x = torch.randn(shape, generator=gen, device=device)  # drawn even with ``start``: the noise after it stays the same
    if start is None:
        return x
    if tuple(start.shape) != shape:
        raise CourseError(f"start must have the shape of the samples, {shape}, got {tuple(start.shape)}.")
    return start.detach().to(device=device, dtype=x.dtype).clone()


def _reverse(net, stepper, schedule: Schedule, x: torch.Tensor, gen: torch.Generator, prediction: str,
             opts: SampleOptions):
    """The reverse process from ``x``: (x_0, the kept frames, their timesteps)."""
    times = stepper.timesteps(schedule.T, opts.steps)
    keep = {times[int(round(v))] for v in torch.linspace(0, len(times) - 1, opts.frames).tolist()} if opts.frames else set()
    snaps, snap_t = [], []
    it = range(len(times))
    if opts.progress:
        it = tqdm(it, desc=f"sampling ({stepper.name}, {len(times)} steps)", leave=False)
    for k in it:
        i, s = times[k], (times[k + 1] if k + 1 < len(times) else -1)
        out = net(x, torch.full((x.shape[0],), i, device=x.device, dtype=torch.long))
        eps, x0 = (out, None) if prediction == "eps" else schedule.eps_x0(x, torch.full(
            (x.shape[0],), i, device=x.device, dtype=torch.long), out, prediction)
        z = torch.randn(x.shape, generator=gen, device=x.device) if stepper.needs_noise(i, s) else None
        x = stepper.step(schedule, x, i, s, eps, x0, z)
        if i in keep:
            snaps.append(x.detach().cpu().clone())
            snap_t.append(i)
    return x, snaps, snap_t


@torch.no_grad()
def sample(model: torch.nn.Module, n: int = 16, schedule: Schedule | None = None, seed: int | None = 0,
           sampler: str | DDPMSampler | DDIMSampler = "ddpm", **options):
    """Draw ``n`` images by running the reverse process from pure noise (or from ``start``); ``seed`` makes them
    reproducible (bitwise on the CPU).

    ``sampler``: "ddpm" (all T steps, variance ``sigma``: "beta" or "beta_tilde"), "ddim" (``steps``, default 25,
    noise ``eta`` in [0, 1]) or a :class:`DDPMSampler` / :class:`DDIMSampler`. The other options
    (:class:`SampleOptions`): ``clip_x0`` (:class:`ClipX0`), ``labels`` and ``guidance`` (:class:`Guided`),
    ``start`` (x_T instead of noise: a diagnostic that leaks data, never a sampler to report FID for), ``frames``
    (also return that many intermediate x_t, (frames, n, C, H, W), and their timesteps), ``progress``, ``device``.
    The schedule and prediction come from the model's config; an explicit ``schedule`` of another kind is refused
    (a shorter T is allowed).
    """
    opts = SampleOptions.of(options)
    stepper = make_sampler(sampler, opts.sigma, opts.steps, opts.eta, opts.clip_x0)
    if not isinstance(n, int) or n < 1:
        raise CourseError(f"the number of samples must be a whole number >= 1, got {n!r}.")
    cfg = getattr(model, "config", None)  # None: a network that is not a course U-Net, sampled with the defaults
    prediction = diffusion_of(cfg).prediction
    if schedule is None:
        schedule = Schedule.from_config(cfg)
    check_schedule_fits(schedule, cfg)
    stepper.timesteps(schedule.T, opts.steps)  # a bad number of steps fails before any work
    device = torch.device(opts.device) if opts.device is not None else _model_device(model)
    shape = (n, 1, 16, 16) if cfg is None else (n, cfg.img_channels, cfg.img_size, cfg.img_size)
    gen = torch.Generator(device=device)
    gen.manual_seed(int(seed) if seed is not None else torch.seed())
    was_training = model.training
    model.eval()
    labels = opts.labels.to(device) if opts.labels is not None else None
    x, snaps, snap_t = _reverse(Guided(model, labels, opts.guidance), stepper, schedule,
                                _start(shape, gen, device, opts.start), gen, prediction, opts)
    model.train(was_training)
    x = x.clamp(-1, 1).cpu()
    return (x, torch.stack(snaps), snap_t) if opts.frames else x
