"""One configurable U-Net: every architectural idea of the course is one field of :class:`UNetConfig`.

``baseline`` reproduces the original course's baseline (240,385 parameters) and ``optimized`` its
optimized model (1,979,777 parameters); the ladder between them changes one idea per rung.
"""
from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass

import torch
from torch import nn

from course_utils.diffusion import T_DEFAULT, DiffusionConfig  # noqa: F401 (T_DEFAULT: lessons.time_embedding)
from course_utils.errors import CourseError
from course_utils.model.blocks import (ConvBlock, DownBlock, EmbedBlock, ResidualConvBlock, SinusoidalEmbedding,
                                       UpBlock, known, make_act, make_norm, resolve_factories)

# The keys of the first file format, written by to_dict always (every shipped checkpoint, manifest and cached run
# carries them). A field added later is written only where it differs from its default, so files written before
# it existed read, compare and are rewritten exactly as before, with no list to keep up to date.
FIRST_FORMAT = ("channels", "up_convs", "norm_after_up", "norm", "groups_first", "groups", "act", "down", "up",
                "time_embed", "time_dim", "residual_first", "extra_skip", "img_size", "img_channels", "T",
                "num_classes")
DIFFUSION_FIELDS = tuple(f.name for f in dataclasses.fields(DiffusionConfig))


@dataclass(frozen=True)
class UNetConfig:
    """One field per architectural idea. The defaults are the original course's baseline.

    ``diffusion`` is not architecture but the diffusion process the network is trained for (a
    :class:`~course_utils.diffusion.DiffusionConfig`: schedule, zero_terminal_snr, prediction, T, beta_start,
    beta_end; notebook 09). Its settings read as if they were the config's own (``config.prediction``,
    ``config.T``), and :meth:`replace`, :meth:`from_dict` and ``build(preset, schedule=...)`` take them by the same
    flat names. Configs compare as objects; :meth:`to_dict` writes the flat form every checkpoint stores, and
    :meth:`from_dict` reads it (or the nested form), filling a missing key with its default.
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
    num_classes: int = 0              # > 0: class-conditional (classifier-free guidance, notebook 10)
    diffusion: DiffusionConfig = DiffusionConfig()  # the diffusion process (schedule, prediction, T, betas)
    time_scale: str = "t/T"           # what the time embedding sees: "t/T" in [0, 1) or the integer step "t" (nb 06)

    # the diffusion settings, read by their flat names
    schedule = property(lambda self: self.diffusion.schedule)
    zero_terminal_snr = property(lambda self: self.diffusion.zero_terminal_snr)
    prediction = property(lambda self: self.diffusion.prediction)
    T = property(lambda self: self.diffusion.T)
    beta_start = property(lambda self: self.diffusion.beta_start)
    beta_end = property(lambda self: self.diffusion.beta_end)

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """Every name a config is written with: the architecture fields and the diffusion settings, flat."""
        return tuple(n for f in dataclasses.fields(cls) for n in (DIFFUSION_FIELDS if f.name == "diffusion" else (f.name,)))

    def flat(self) -> dict:
        """Every setting by its flat name (tuples kept), in :meth:`field_names` order."""
        return {n: getattr(self, n) for n in self.field_names()}

    def replace(self, **changes) -> "UNetConfig":
        """A copy with ``changes``: architecture fields, the diffusion settings by their flat names
        (``schedule="cosine"``), or a whole ``diffusion=DiffusionConfig(...)`` (applied first)."""
        unknown = set(changes) - set(self.field_names()) - {"diffusion"}
        if unknown:
            raise CourseError(f"unknown U-Net config fields {sorted(unknown)}; known fields: "
                              f"{sorted(self.field_names())}.")
        diffusion = changes.pop("diffusion", self.diffusion)
        if not isinstance(diffusion, DiffusionConfig):
            raise CourseError(f"diffusion must be a DiffusionConfig (fields {DIFFUSION_FIELDS}), got {diffusion!r}.")
        diffusion = dataclasses.replace(diffusion, **{k: changes.pop(k) for k in DIFFUSION_FIELDS if k in changes})
        return dataclasses.replace(self, diffusion=diffusion, **changes)

    def to_dict(self) -> dict:
        """The flat form checkpoints store: the first format's keys always, any later one where it is not its
        default (so a file written before a field existed is written again byte for byte)."""
        default = UNetConfig().flat()
        d = {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.flat().items()
             if k in FIRST_FORMAT or v != default[k]}
        return {**{k: d.pop(k) for k in FIRST_FORMAT}, **d}

    @classmethod
    def from_dict(cls, d: dict) -> "UNetConfig":
        """Read a stored config: the flat form (every shipped file) or the nested one (``"diffusion": {...}``);
        a missing key takes its default."""
        if not isinstance(d, dict):
            raise CourseError(f"a stored U-Net config must be a dict of fields, got {type(d).__name__}.")
        d = dict(d)
        if isinstance(d.get("diffusion"), dict):
            d = {**d.pop("diffusion"), **d}
        if "channels" in d and isinstance(d["channels"], list):
            d["channels"] = tuple(d["channels"])
        return UNetConfig().replace(**d)

    def validate(self) -> None:
        def bad(msg):
            raise CourseError(f"invalid U-Net config: {msg}")

        if len(self.channels) != 3 or any(not isinstance(c, int) or c < 1 for c in self.channels):
            bad(f"channels must be three positive integers, got {self.channels!r}.")
        hint = " (a block of your own: course_utils.model.blocks.register_block first)"
        for kind in ("norm", "act", "down", "up"):
            if getattr(self, kind) not in known(kind):
                bad(f"{kind}={getattr(self, kind)!r}; choose one of {known(kind)}{hint}.")
        if self.time_embed not in ("linear", "sinusoidal"):
            bad(f"time_embed={self.time_embed!r}; choose 'linear' or 'sinusoidal'.")
        if self.img_size < 4 or self.img_size % 4:
            bad(f"img_size={self.img_size} must be a multiple of 4 (the U-Net halves it twice); "
                f"use e.g. {max(4, self.img_size // 4 * 4)} or {self.img_size // 4 * 4 + 4}.")
        if self.up_convs < 0:
            bad(f"up_convs={self.up_convs} must be >= 0.")
        if self.time_scale not in ("t/T", "t"):
            bad(f"time_scale={self.time_scale!r}; choose 't/T' (the default) or 't' (the integer step).")
        if not isinstance(self.diffusion, DiffusionConfig):
            bad(f"diffusion must be a DiffusionConfig, got {type(self.diffusion).__name__}.")
        self.diffusion.validate()


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
# The original course's optimized U-Net (1,979,777 parameters), kept exact: the preset "optimized", whatever ideas
# the ladder adds after it.
OPTIMIZED = UNetConfig(channels=(64, 64, 128), up_convs=4, norm_after_up=False, norm="group", act="gelu",
                       down="rearrange", up="convT2", time_embed="sinusoidal", residual_first=True,
                       extra_skip=True)


@dataclass(frozen=True)
class Idea:
    """One architectural idea: the config fields it sets (``changes``), the ladder rung that adds it (named
    ``rung``, taught by ``notebook``) and, where reverting it needs more than the baseline's values of those fields,
    the ``revert_extra`` fields its leave-one-out preset also sets."""

    name: str
    changes: dict
    rung: str
    description: str
    notebook: str | None = None
    revert_extra: dict = dataclasses.field(default_factory=dict)


# The ladder, one idea per rung, in order. A new idea (say, self-attention at 4x4) is a block, a config field and
# one more entry here: its rung, its leave-one-out preset and its rows in the study follow.
LADDER_IDEAS: list[Idea] = [
    Idea("upsampler", {"up": "convT2"}, "upsample", "baseline + ConvTranspose2d k2/s2 upsampler (kernel divisible "
         "by stride: no checkerboard overlap).", "02_checkerboard_artifacts"),
    # the baseline's widths cannot hold 32 groups: its leave-one-out keeps GroupNorm sensible with 8
    Idea("width", {"channels": (64, 64, 128), "up_convs": 4, "norm_after_up": False}, "wide", "+ capacity: channels "
         "(64, 64, 128), four convs per up block, no norm right after the upsampler.", "03_group_norm",
         {"groups": 8, "groups_first": 8}),
    Idea("groupnorm", {"norm": "group"}, "groupnorm", "+ GroupNorm (8 groups in the first block and head, 32 "
         "elsewhere) instead of BatchNorm.", "03_group_norm"),
    Idea("gelu", {"act": "gelu"}, "gelu", "+ GELU instead of ReLU in every conv block and the time embedding.",
         "04_gelu"),
    Idea("rearrange", {"down": "rearrange"}, "rearrange", "+ rearrange pooling (space-to-depth, then Conv 4C->C) "
         "instead of MaxPool2d(2).", "05_rearrange_pooling"),
    Idea("sinusoidal", {"time_embed": "sinusoidal"}, "sinusoidal", "+ sinusoidal embedding of t/T (dim 8) before "
         "the time MLP.", "06_sinusoidal_time_embeddings"),
    Idea("residual", {"residual_first": True}, "residual", "+ residual first block: x1 = conv(x); out = x1 + "
         "conv(x1).", "07_residual_blocks"),
    Idea("extra_skip", {"extra_skip": True}, "optimized", "The original course's optimized U-Net: + extra skip of "
         "the first block into the output head.", "07_residual_blocks"),
]
BASELINE_DESCRIPTION = ("The original course's baseline: BatchNorm, ReLU, MaxPool, ConvTranspose k3/s2, t/T through "
                        "a Linear.")

_WIDTH_PARTS = [
    ("wide_channels", "channels", "upsample + the optimized channels (64, 64, 128) only: one conv per up block, "
     "BatchNorm right after the upsampler."),
    ("wide_upconvs", "up_convs", "wide_channels + four convs per up block instead of one (the norm after the "
     "upsampler kept); + dropping that norm gives `wide`."),
]


def build_presets(ideas: list[Idea]) -> dict[str, Preset]:
    """Every preset that ``ideas`` (the ladder) implies: the ladder from the baseline, one idea per rung; the top
    of the ladder with each idea left out; the width idea in its parts; the original optimized model, conditional."""
    presets = {"baseline": Preset("baseline", BASELINE_DESCRIPTION, BASELINE, "01_baseline_ddpm", "ladder", None)}
    cfg = BASELINE
    for idea in ideas:
        cfg = cfg.replace(**idea.changes)
        presets[idea.rung] = Preset(idea.rung, idea.description, cfg, idea.notebook, "ladder", idea.name)
    if presets.get("optimized", Preset("", "", OPTIMIZED)).config != OPTIMIZED:
        raise CourseError("the ladder's rung 'optimized' must be the original course's optimized U-Net "
                          "(unet.OPTIMIZED); add a new idea after it, not before.")
    top, top_name = cfg, ideas[-1].rung if ideas else "baseline"
    for idea in ideas:
        reverted = top.replace(**{f: getattr(BASELINE, f) for f in idea.changes}, **idea.revert_extra)
        presets[f"no_{idea.name}"] = Preset(
            f"no_{idea.name}", f"{top_name} with the {idea.name} idea reverted to the baseline's "
            f"({', '.join(idea.changes)}).", reverted, "08_putting_it_together", "leave-one-out", idea.name)
    # Width bundles three changes; the side study adds them one at a time between `upsample` and `wide`.
    cfg = presets["upsample"].config
    for name, field, desc in _WIDTH_PARTS:
        cfg = cfg.replace(**{field: getattr(OPTIMIZED, field)})
        presets[name] = Preset(name, desc, cfg, "03_group_norm", "width", "width")
    presets["optimized_cond"] = Preset(
        "optimized_cond", "optimized + the class label (one-hot, 10 classes) through two embedding blocks that scale "
        "the up path's features; trained with context dropout for classifier-free guidance.",
        OPTIMIZED.replace(num_classes=10), "10_classifier_free_guidance", "conditional", None)
    return presets


def registry(ideas: list[Idea]) -> dict:
    """The module's preset tables for the ladder ``ideas`` (a test swaps in a ladder with an idea of its own)."""
    presets = build_presets(ideas)
    ladder = [n for n, p in presets.items() if p.kind == "ladder"]
    return {
        "IDEAS": {i.name: tuple(i.changes) for i in ideas},  # each idea: the fields it changes
        "PRESETS": presets,
        "LADDER": ladder,
        "TOP": ladder[-1],  # the top of the ladder: every idea (today the original optimized model)
        # upsample -> wide in three steps: the channels, the up convs, no norm after the upsampler (= wide)
        "WIDTH_STEPS": ["upsample"] + [n for n, p in presets.items() if p.kind == "width"] + ["wide"],
        # the presets of the shipped equal-step ablation: the ladder and the leave-one-out presets
        "ABLATED": [n for n, p in presets.items() if p.kind in ("ladder", "leave-one-out")],
    }


_REGISTRY = registry(LADDER_IDEAS)
IDEAS: dict[str, tuple[str, ...]] = _REGISTRY["IDEAS"]
PRESETS: dict[str, Preset] = _REGISTRY["PRESETS"]
LADDER: list[str] = _REGISTRY["LADDER"]
TOP: str = _REGISTRY["TOP"]
WIDTH_STEPS: list[str] = _REGISTRY["WIDTH_STEPS"]
ABLATED: list[str] = _REGISTRY["ABLATED"]


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
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
