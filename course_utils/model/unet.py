"""One configurable U-Net: every architectural idea of the course is one field of :class:`UNetConfig`.

``baseline`` reproduces the original course's baseline (240,385 parameters) and ``optimized`` its
optimized model (1,979,777 parameters); the ladder between them changes one idea per rung.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import nn

from course_utils.model.blocks import (ACTIVATIONS, NORMS, UPSAMPLERS, ConvBlock, known, resolve_factories, DownBlock, EmbedBlock, ResidualConvBlock,
                     SinusoidalEmbedding, UpBlock, make_act, make_norm)
from course_utils.errors import CourseError

T_DEFAULT = 150
SCHEDULES = ("linear", "cosine", "linear_scaled")  # the same names as course_utils.diffusion.SCHEDULES
PREDICTIONS = ("eps", "v")                          # the same names as course_utils.diffusion.PREDICTIONS
# The diffusion process the network is trained for, kept in the config (and so in every checkpoint) so that a model
# is never sampled with another one. Written by to_dict only when they differ from these defaults.
DIFFUSION_DEFAULTS = {"schedule": "linear", "zero_terminal_snr": False, "prediction": "eps", "beta_start": 1e-4,
                      "beta_end": 0.02}
# fields that a config dict leaves out at their default, so that configs saved before they existed stay identical
OMITTED_AT_DEFAULT = {**DIFFUSION_DEFAULTS, "time_scale": "t/T"}


@dataclass(frozen=True)
class UNetConfig:
    """One field per architectural idea. The defaults are the original course's baseline.

    The last three fields are not architecture but the diffusion process the network is trained for (notebook 09):
    ``schedule`` ("linear": the original beta 1e-4..0.02; "cosine"; "linear_scaled": beta x 1000/T),
    ``zero_terminal_snr`` (Lin et al., 2024: rescale that schedule so abar_{T-1} = 0) and ``prediction``
    ("eps": the noise; "v": sqrt(abar) eps - sqrt(1 - abar) x0). The rescaling is a separate switch, not a fourth
    schedule name, because it is a transformation that applies to any base schedule (the paper applies it to a
    linear one; cosine + rescale is as valid), so every combination stays expressible without a name per pair, and
    the config says plainly which base schedule was rescaled. It needs ``prediction="v"``: at abar = 0 the input
    is pure noise, so an eps-network's answer (eps = x_t) says nothing about x0 = (x_t - sqrt(1 - abar) eps) /
    sqrt(abar), a division by zero. :meth:`to_dict` leaves these fields out while they hold their defaults, so
    every config written before they existed (shipped checkpoints, manifests, cached runs) reads and compares
    exactly as before; :meth:`from_dict` fills them in with the defaults.
    """

    channels: tuple[int, int, int] = (16, 32, 64)  # widths at 16x16, 8x8 and 4x4
    up_convs: int = 1                 # ConvBlocks after each upsampler
    norm_after_up: bool = True        # norm + activation straight after the upsampler (baseline)
    norm: str = "batch"               # "batch" | "group"
    groups_first: int = 8             # GroupNorm groups in the first block and the output head
    groups: int = 32                  # GroupNorm groups everywhere else
    act: str = "relu"                 # "relu" | "gelu"
    down: str = "maxpool"             # "maxpool" | "rearrange"
    up: str = "convT3"                # "convT3" | "convT2" | "resize"
    time_embed: str = "linear"        # "linear" (t/T into a Linear) | "sinusoidal"
    time_dim: int = 8                 # size of the sinusoidal embedding
    residual_first: bool = False      # first block x1 + conv(x1)
    extra_skip: bool = False          # concatenate the first block's output before the output head
    img_size: int = 16
    img_channels: int = 1
    T: int = T_DEFAULT
    num_classes: int = 0              # > 0: class-conditional (classifier-free guidance, notebook 09)
    schedule: str = "linear"          # "linear" | "cosine" | "linear_scaled" (the noise schedule, notebook 09)
    zero_terminal_snr: bool = False   # rescale the schedule to abar_{T-1} = 0 (needs prediction="v")
    prediction: str = "eps"           # "eps" (the noise) | "v" (sqrt(abar) eps - sqrt(1 - abar) x0)
    beta_start: float = 1e-4          # the linear schedules' first and last beta (notebook 01's exercise)
    beta_end: float = 0.02
    time_scale: str = "t/T"           # what the time embedding sees: "t/T" in [0, 1) or the integer step "t" (nb 06)

    def replace(self, **changes) -> "UNetConfig":
        known = {f.name for f in dataclasses.fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise CourseError(f"unknown U-Net config fields {sorted(unknown)}; known fields: {sorted(known)}.")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["channels"] = list(self.channels)
        for k, v in OMITTED_AT_DEFAULT.items():  # absent means the default: old configs stay byte-identical
            if d[k] == v:
                del d[k]
        return d

    def diffusion(self) -> dict:
        """The fields that set the diffusion process: schedule, zero_terminal_snr, prediction, beta_start, beta_end."""
        return {k: getattr(self, k) for k in DIFFUSION_DEFAULTS}

    @classmethod
    def from_dict(cls, d: dict) -> "UNetConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise CourseError(f"unknown U-Net config fields {sorted(unknown)}; known fields: {sorted(known)}.")
        d = dict(d)
        if "channels" in d:
            d["channels"] = tuple(d["channels"])
        return cls(**d)

    def validate(self) -> None:
        def bad(msg):
            raise CourseError(f"invalid U-Net config: {msg}")

        if len(self.channels) != 3 or any(not isinstance(c, int) or c < 1 for c in self.channels):
            bad(f"channels must be three positive integers, got {self.channels!r}.")
        hint = " (a block of your own: course_utils.model.blocks.register_block first)"
        if self.norm not in known("norm"):
            bad(f"norm={self.norm!r}; choose one of {known('norm')}{hint}.")
        if self.act not in known("act"):
            bad(f"act={self.act!r}; choose one of {known('act')}{hint}.")
        if self.down not in known("down"):
            bad(f"down={self.down!r}; choose one of {known('down')}{hint}.")
        if self.up not in known("up"):
            bad(f"up={self.up!r}; choose one of {known('up')}{hint}.")
        if self.time_embed not in ("linear", "sinusoidal"):
            bad(f"time_embed={self.time_embed!r}; choose 'linear' or 'sinusoidal'.")
        if self.img_size < 4 or self.img_size % 4:
            bad(f"img_size={self.img_size} must be a multiple of 4 (the U-Net halves it twice); "
                f"use e.g. {max(4, self.img_size // 4 * 4)} or {self.img_size // 4 * 4 + 4}.")
        if self.up_convs < 0:
            bad(f"up_convs={self.up_convs} must be >= 0.")
        if self.T < 1:
            bad(f"T={self.T} must be >= 1.")
        if self.schedule not in SCHEDULES:
            bad(f"schedule={self.schedule!r}; choose one of {SCHEDULES}.")
        if self.prediction not in PREDICTIONS:
            bad(f"prediction={self.prediction!r}; choose one of {PREDICTIONS}.")
        if self.time_scale not in ("t/T", "t"):
            bad(f"time_scale={self.time_scale!r}; choose 't/T' (the default) or 't' (the integer step).")
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


class UNet(nn.Module):
    """The course's U-Net. ``forward(x, t)`` takes images (B, C, H, W) and integer timesteps t (B,) in [0, T).

    The network sees t/T (a number in [0, 1)) and predicts the noise that was added to x (or, with
    ``prediction="v"``, the velocity v; see :class:`UNetConfig`).
    """

    def __init__(self, config: UNetConfig | None = None, **overrides):
        super().__init__()
        if overrides:
            overrides = resolve_factories(overrides)  # act=MyGELU registers the student's module by its name
        cfg = (config or UNetConfig()).replace(**overrides) if overrides else (config or UNetConfig())
        cfg.validate()
        self.config = cfg
        c0, c1, c2 = cfg.channels
        latent = cfg.img_size // 4
        norm, act, g, g0 = cfg.norm, cfg.act, cfg.groups, cfg.groups_first

        if cfg.residual_first:
            self.down0 = ResidualConvBlock(cfg.img_channels, c0, norm, g0, act, "down0")
        else:
            self.down0 = ConvBlock(cfg.img_channels, c0, norm, g0, act, "down0")
        self.down1 = DownBlock(c0, c1, norm, g, act, cfg.down, "down1")
        self.down2 = DownBlock(c1, c2, norm, g, act, cfg.down, "down2")
        flat = c2 * latent * latent
        self.to_vec = nn.Sequential(nn.Flatten(), make_act(act))
        self.dense_emb = nn.Sequential(
            nn.Linear(flat, c1), nn.ReLU(),
            nn.Linear(c1, c1), nn.ReLU(),
            nn.Linear(c1, flat), nn.ReLU(),
        )
        if cfg.time_embed == "sinusoidal":
            self.time_features = SinusoidalEmbedding(cfg.time_dim)
            t_in = cfg.time_dim
        else:
            self.time_features = nn.Identity()
            t_in = 1
        self.t_emb1 = EmbedBlock(t_in, c2, act)
        self.t_emb2 = EmbedBlock(t_in, c1, act)
        if cfg.num_classes:
            self.c_emb1 = EmbedBlock(cfg.num_classes, c2, act)
            self.c_emb2 = EmbedBlock(cfg.num_classes, c1, act)
        self.up0 = nn.Sequential(nn.Unflatten(1, (c2, latent, latent)), ConvBlock(c2, c2, norm, g, act, "up0"))
        self.up1 = UpBlock(c2, c1, norm, g, act, cfg.up, cfg.up_convs, cfg.norm_after_up, "up1")
        self.up2 = UpBlock(c1, c0, norm, g, act, cfg.up, cfg.up_convs, cfg.norm_after_up, "up2")
        head_in = 2 * c0 if cfg.extra_skip else c0
        self.out = nn.Sequential(
            nn.Conv2d(head_in, c0, 3, padding=1),
            make_norm(norm, c0, g0, "out.norm"),
            nn.ReLU(),
            nn.Conv2d(c0, cfg.img_channels, 3, padding=1),
        )

    def check_inputs(self, x: torch.Tensor, t: torch.Tensor, c: torch.Tensor | None = None) -> None:
        cfg = self.config
        want = f"(batch, {cfg.img_channels}, {cfg.img_size}, {cfg.img_size})"
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise CourseError(f"the U-Net needs a floating-point image tensor of shape {want}, got "
                              f"{type(x).__name__ if not isinstance(x, torch.Tensor) else x.dtype}. "
                              "Fix: convert with x.float() and scale pixels to [-1, 1].")
        if x.ndim != 4 or tuple(x.shape[1:]) != (cfg.img_channels, cfg.img_size, cfg.img_size):
            raise CourseError(f"the U-Net expects images of shape {want}, got {tuple(x.shape)}. "
                              f"Fix: resize to {cfg.img_size}x{cfg.img_size} with {cfg.img_channels} channel(s) "
                              "(course_utils.data does this), and keep the batch dimension.")
        if not isinstance(t, torch.Tensor) or t.shape != (x.shape[0],):
            shape = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise CourseError(f"the timesteps t must be a tensor of shape ({x.shape[0]},), one per image, got {shape}. "
                              "Fix: torch.full((batch,), t) for one step, or torch.randint(0, T, (batch,)).")
        if t.numel() and (bool((t < 0).any()) or bool((t > cfg.T - 1).any())):
            raise CourseError(f"timesteps must lie in [0, {cfg.T - 1}] (T={cfg.T}), got values from "
                              f"{t.min().item()} to {t.max().item()}. Fix: pass integer steps, not t/T.")
        if c is not None and cfg.num_classes and (c.shape != (x.shape[0],)):
            raise CourseError(f"class labels must have shape ({x.shape[0]},), got {tuple(c.shape)}.")

    def forward(self, x: torch.Tensor, t: torch.Tensor, c: torch.Tensor | None = None,
                c_mask: torch.Tensor | None = None) -> torch.Tensor:
        self.check_inputs(x, t, c)
        cfg = self.config
        down0 = self.down0(x)
        down1 = self.down1(down0)
        down2 = self.down2(down1)
        latent = self.dense_emb(self.to_vec(down2))
        tt = t.float() / cfg.T if cfg.time_scale == "t/T" else t.float()
        feats = self.time_features(tt) if cfg.time_embed == "sinusoidal" else tt[:, None]
        t_emb1, t_emb2 = self.t_emb1(feats), self.t_emb2(feats)
        up0 = self.up0(latent)
        if cfg.num_classes:
            # the label as a one-hot vector; a masked label (c_mask 0) or none at all is the zero vector, the
            # "no context" input that context dropout trains for classifier-free guidance
            if c is None:
                one_hot = x.new_zeros(x.shape[0], cfg.num_classes)
            else:
                one_hot = nn.functional.one_hot(c.long(), cfg.num_classes).float()
                if c_mask is not None:
                    one_hot = one_hot * c_mask.float()[:, None]
            up1 = self.up1(self.c_emb1(one_hot) * up0 + t_emb1, down2)
            up2 = self.up2(self.c_emb2(one_hot) * up1 + t_emb2, down1)
        else:
            up1 = self.up1(up0 + t_emb1, down2)
            up2 = self.up2(up1 + t_emb2, down1)
        if cfg.extra_skip:
            up2 = torch.cat((up2, down0), 1)
        return self.out(up2)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# --- presets -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    config: UNetConfig
    notebook: str | None = None       # the notebook that teaches this rung
    kind: str = "ladder"              # "ladder" | "leave-one-out" | "width" (the width idea split in its parts)
    #                                   | "conditional" (class labels, classifier-free guidance: notebook 10)
    idea: str | None = None           # the idea changed from the previous rung / reverted from optimized


BASELINE = UNetConfig()
OPTIMIZED = UNetConfig(channels=(64, 64, 128), up_convs=4, norm_after_up=False, norm="group", act="gelu",
                       down="rearrange", up="convT2", time_embed="sinusoidal", residual_first=True,
                       extra_skip=True)

# Each idea: the fields it changes, taken from OPTIMIZED.
IDEAS: dict[str, tuple[str, ...]] = {
    "upsampler": ("up",),
    "width": ("channels", "up_convs", "norm_after_up"),
    "groupnorm": ("norm",),
    "gelu": ("act",),
    "rearrange": ("down",),
    "sinusoidal": ("time_embed",),
    "residual": ("residual_first",),
    "extra_skip": ("extra_skip",),
}

_LADDER = [
    ("baseline", None, "The original course's baseline: BatchNorm, ReLU, MaxPool, ConvTranspose k3/s2, t/T through a Linear.", "01_baseline_ddpm"),
    ("upsample", "upsampler", "baseline + ConvTranspose2d k2/s2 upsampler (kernel divisible by stride: no checkerboard overlap).", "02_checkerboard_artifacts"),
    ("wide", "width", "+ capacity: channels (64, 64, 128), four convs per up block, no norm right after the upsampler.", "03_group_norm"),
    ("groupnorm", "groupnorm", "+ GroupNorm (8 groups in the first block and head, 32 elsewhere) instead of BatchNorm.", "03_group_norm"),
    ("gelu", "gelu", "+ GELU instead of ReLU in every conv block and the time embedding.", "04_gelu"),
    ("rearrange", "rearrange", "+ rearrange pooling (space-to-depth, then Conv 4C->C) instead of MaxPool2d(2).", "05_rearrange_pooling"),
    ("sinusoidal", "sinusoidal", "+ sinusoidal embedding of t/T (dim 8) before the time MLP.", "06_sinusoidal_time_embeddings"),
    ("residual", "residual", "+ residual first block: x1 = conv(x); out = x1 + conv(x1).", "07_residual_blocks"),
    ("optimized", "extra_skip", "The original course's optimized U-Net: + extra skip of the first block into the output head.", "07_residual_blocks"),
]


_WIDTH_PARTS = [
    ("wide_channels", "channels", "upsample + the optimized channels (64, 64, 128) only: one conv per up block, "
     "BatchNorm right after the upsampler."),
    ("wide_upconvs", "up_convs", "wide_channels + four convs per up block instead of one (the norm after the "
     "upsampler kept); + dropping that norm gives `wide`."),
]


def _build_presets() -> dict[str, Preset]:
    presets: dict[str, Preset] = {}
    cfg = BASELINE
    for name, idea, desc, nb in _LADDER:
        if idea:
            cfg = cfg.replace(**{f: getattr(OPTIMIZED, f) for f in IDEAS[idea]})
        presets[name] = Preset(name, desc, cfg, nb, "ladder", idea)
    assert presets["optimized"].config == OPTIMIZED
    for idea, fields in IDEAS.items():
        reverted = OPTIMIZED.replace(**{f: getattr(BASELINE, f) for f in fields})
        if idea == "width":  # the baseline's widths cannot hold 32 groups; keep GroupNorm sensible
            reverted = reverted.replace(groups=8, groups_first=8)
        presets[f"no_{idea}"] = Preset(f"no_{idea}", f"optimized with the {idea} idea reverted to the baseline's "
                                       f"({', '.join(fields)}).", reverted, "08_putting_it_together",
                                       "leave-one-out", idea)
    # Width bundles three changes; the side study adds them one at a time between `upsample` and `wide`.
    cfg = presets["upsample"].config
    for name, field, desc in _WIDTH_PARTS:
        cfg = cfg.replace(**{field: getattr(OPTIMIZED, field)})
        presets[name] = Preset(name, desc, cfg, "03_group_norm", "width", "width")
    assert cfg.replace(norm_after_up=OPTIMIZED.norm_after_up) == presets["wide"].config
    presets["optimized_cond"] = Preset(
        "optimized_cond", "optimized + the class label (one-hot, 10 classes) through two embedding blocks that scale "
        "the up path's features; trained with context dropout for classifier-free guidance.",
        OPTIMIZED.replace(num_classes=10), "10_classifier_free_guidance", "conditional", None)
    return presets


PRESETS: dict[str, Preset] = _build_presets()
LADDER: list[str] = [n for n, p in PRESETS.items() if p.kind == "ladder"]
# upsample -> wide in three steps: the channels, the up convs, no norm after the upsampler (= wide)
WIDTH_STEPS: list[str] = ["upsample"] + [n for n, p in PRESETS.items() if p.kind == "width"] + ["wide"]
# the presets of the shipped equal-step ablation: the ladder and the leave-one-out presets
ABLATED: list[str] = [n for n, p in PRESETS.items() if p.kind in ("ladder", "leave-one-out")]


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        import difflib
        close = difflib.get_close_matches(str(name), PRESETS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise CourseError(f"unknown preset {name!r}.{hint} Known presets: {', '.join(PRESETS)} "
                          "(python -m course_utils variants lists them).")
    return PRESETS[name]


def same_network(names: list[str]) -> dict[str, str]:
    """Each preset name -> the first of ``names`` with an identical config (itself if none came before).

    ``no_extra_skip`` is the same network as ``residual``: the ablation and the benchmark measure it once."""
    first: dict[UNetConfig, str] = {}
    return {n: first.setdefault(get_preset(n).config, n) for n in names}


def build(name_or_config: str | UNetConfig, **overrides) -> UNet:
    """Build a U-Net from a preset name or a config; keyword arguments override config fields."""
    cfg = get_preset(name_or_config).config if isinstance(name_or_config, str) else name_or_config
    return UNet(cfg, **overrides)
