"""The building blocks of the course's U-Net, one small module per idea.

Every block takes its normalization and activation by name, so a single switch in
:class:`course_utils.model.unet.UNetConfig` swaps BatchNorm for GroupNorm or ReLU for GELU everywhere.
"""
from __future__ import annotations

import math

import torch
from einops.layers.torch import Rearrange
from torch import nn

from course_utils.errors import CourseError

ACTIVATIONS = ("relu", "gelu", "silu")
NORMS = ("batch", "group")

# Blocks a student registers under a name (see :func:`register_block`): kind -> name -> factory.
_REGISTERED: dict[str, dict[str, object]] = {"act": {}, "norm": {}, "up": {}, "down": {}}
_FACTORY_CALL = {"act": "factory()", "norm": "factory(channels, groups)", "up": "factory(in_channels, out_channels)",
                 "down": "factory(channels)"}
DOWNSAMPLERS = ("maxpool", "rearrange")


def register_block(kind: str, name: str, factory) -> None:
    """Make your own module usable by name in a U-Net config, e.g. ``build("wide", act="my_silu")``.

    ``kind`` is "act" (``factory()`` returns an activation), "norm" (``factory(channels, groups)`` returns a
    normalization that keeps the shape), "up" (``factory(in_channels, out_channels)`` returns an upsampler that
    doubles height and width) or "down" (``factory(channels)`` returns a downsampler that halves height and width
    and keeps the channels). The factory is tried on a small tensor at once, so a mistake shows here and not deep
    inside a U-Net. A checkpoint stores only the name: register the same factory again before loading it.
    """
    if kind not in _REGISTERED:
        raise CourseError(f"register_block: kind={kind!r}; choose one of {tuple(_REGISTERED)}.")
    builtin = _builtin(kind)
    if not isinstance(name, str) or not name.isidentifier() or name in builtin:
        raise CourseError(f"register_block: name={name!r} must be a new identifier, not one of the built-in "
                          f"{builtin}.")
    if not callable(factory):
        raise CourseError(f"register_block: factory must be callable as {_FACTORY_CALL[kind]}, got {factory!r}.")
    x = torch.randn(2, 8, 4, 4)
    try:
        module = {"act": lambda: factory(), "norm": lambda: factory(8, 4), "up": lambda: factory(8, 3),
                  "down": lambda: factory(8)}[kind]()
        y = module(x)
    except Exception as e:  # the student's code: report it, do not register it
        raise CourseError(f"register_block: {_FACTORY_CALL[kind]} failed on a (2, 8, 4, 4) input: "
                          f"{type(e).__name__}: {e}") from None
    want = {"up": (2, 3, 8, 8), "down": (2, 8, 2, 2)}.get(kind, (2, 8, 4, 4))
    if not isinstance(module, nn.Module) or not isinstance(y, torch.Tensor) or tuple(y.shape) != want:
        raise CourseError(f"register_block: {_FACTORY_CALL[kind]} must return an nn.Module whose output has shape "
                          f"{want} for a (2, 8, 4, 4) input; got {type(module).__name__} -> "
                          f"{tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__}.")
    _REGISTERED[kind][name] = factory


def is_registered(kind: str, name) -> bool:
    """Whether ``name`` is a block of ``kind`` registered by the user (not a built-in one)."""
    return isinstance(name, str) and name in _REGISTERED.get(kind, {})


def resolve_factories(fields: dict) -> dict:
    """``fields`` (config fields to change) with every module factory given for "act", "norm", "up" or "down"
    registered under its own name (:func:`register_block`) and replaced by that name: ``{"act": MyGELU}`` becomes
    ``{"act": "MyGELU"}``. A factory named like a built-in block gets the prefix ``my_``."""
    out = dict(fields)
    for kind in _REGISTERED:
        factory = out.get(kind)
        if factory is None or isinstance(factory, str):
            continue
        if not callable(factory):
            raise CourseError(f"{kind}={factory!r}: give a name ({known(kind)}) or a factory (a class or function "
                              f"callable as {_FACTORY_CALL[kind]}).")
        name = getattr(factory, "__name__", type(factory).__name__)
        if not name.isidentifier() or name == "<lambda>":
            name = f"my_{kind}"
        if name in _builtin(kind):
            name = f"my_{name}"
        register_block(kind, name, factory)
        out[kind] = name
    return out


def uses_registered(config) -> bool:
    """Whether a U-Net config uses a block of the user's own (then runs of it are never reused: the code may
    have changed since)."""
    return any(is_registered(kind, getattr(config, kind, None)) for kind in _REGISTERED)


def unregister_block(kind: str, name: str) -> None:
    """Forget a block registered with :func:`register_block` (nothing happens if it is not registered)."""
    _REGISTERED.get(kind, {}).pop(name, None)


def _builtin(kind: str) -> tuple[str, ...]:
    return {"act": ACTIVATIONS, "norm": NORMS, "up": tuple(UPSAMPLERS), "down": DOWNSAMPLERS}[kind]


def known(kind: str) -> tuple[str, ...]:
    """The names a config may use for ``kind`` ("act", "norm", "up", "down"): the built-in and the registered ones."""
    return _builtin(kind) + tuple(_REGISTERED[kind])


def divisors(n: int) -> list[int]:
    """Every whole number that divides n: the group counts GroupNorm accepts for n channels."""
    return [d for d in range(1, n + 1) if n % d == 0]


def make_norm(kind: str, channels: int, groups: int, where: str = "layer") -> nn.Module:
    """BatchNorm2d or GroupNorm(num_groups=groups, num_channels=channels).

    ``nn.GroupNorm``'s first argument is the *number of groups*, not the number of channels per
    group, so it must divide ``channels``. We check that here and name the layer if it does not.
    """
    if kind in _REGISTERED["norm"]:
        return _REGISTERED["norm"][kind](channels, groups)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        if not isinstance(groups, int) or groups < 1 or channels % groups:
            raise CourseError(
                f"{where}: GroupNorm(num_groups={groups}, num_channels={channels}) is impossible: "
                f"the number of groups must divide the number of channels ({channels}). "
                f"Fix: pick num_groups from the divisors of {channels}: {divisors(channels)}."
            )
        return nn.GroupNorm(groups, channels)
    raise CourseError(f"{where}: unknown normalization {kind!r}; choose one of {known('norm')}.")


def make_act(kind: str) -> nn.Module:
    if kind in _REGISTERED["act"]:
        return _REGISTERED["act"][kind]()
    if kind == "relu":
        return nn.ReLU()
    if kind == "gelu":
        return nn.GELU()
    if kind == "silu":
        return nn.SiLU()
    raise CourseError(f"unknown activation {kind!r}; choose one of {known('act')}.")


class ConvBlock(nn.Sequential):
    """Conv3x3 -> norm -> activation. With GroupNorm and GELU this is the original course's GELUConvBlock."""

    def __init__(self, in_ch: int, out_ch: int, norm: str = "batch", groups: int = 32,
                 act: str = "relu", where: str = "conv"):
        super().__init__(
            nn.Conv2d(in_ch, out_ch, 3, padding=1),
            make_norm(norm, out_ch, groups, where),
            make_act(act),
        )


class ResidualConvBlock(nn.Module):
    """Two ConvBlocks with a shortcut around the second: out = x1 + block2(x1), where x1 = block1(x)."""

    def __init__(self, in_ch: int, out_ch: int, norm: str, groups: int, act: str, where: str = "first"):
        super().__init__()
        self.conv1 = ConvBlock(in_ch, out_ch, norm, groups, act, f"{where}.conv1")
        self.conv2 = ConvBlock(out_ch, out_ch, norm, groups, act, f"{where}.conv2")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.conv1(x)
        return x1 + self.conv2(x1)


class RearrangePool(nn.Module):
    """Space-to-depth, then a ConvBlock from 4C back to C channels.

    The rearrange alone is a bijection (identical to ``nn.PixelUnshuffle(2)``): every pixel moves to
    a channel, none is lost. The convolution that follows maps 4C channels to C, so the block as a
    whole cannot be inverted.
    """

    pattern = "b c (h p1) (w p2) -> b (c p1 p2) h w"

    def __init__(self, channels: int, norm: str, groups: int, act: str, where: str = "pool"):
        super().__init__()
        self.rearrange = Rearrange(self.pattern, p1=2, p2=2)
        self.conv = ConvBlock(4 * channels, channels, norm, groups, act, f"{where}.conv")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.rearrange(x))


class DownBlock(nn.Sequential):
    """Two ConvBlocks, then halve the resolution (MaxPool2d(2) or rearrange pooling)."""

    def __init__(self, in_ch: int, out_ch: int, norm: str, groups: int, act: str, down: str,
                 where: str = "down"):
        if down in _REGISTERED["down"]:
            pool = _REGISTERED["down"][down](out_ch)
        elif down == "maxpool":
            pool = nn.MaxPool2d(2)
        elif down == "rearrange":
            pool = RearrangePool(out_ch, norm, groups, act, f"{where}.pool")
        else:
            raise CourseError(f"{where}: unknown downsampler {down!r}; choose one of {known('down')}.")
        super().__init__(
            ConvBlock(in_ch, out_ch, norm, groups, act, f"{where}.conv1"),
            ConvBlock(out_ch, out_ch, norm, groups, act, f"{where}.conv2"),
            pool,
        )


UPSAMPLERS = {
    "convT3": "ConvTranspose2d(k=3, s=2, p=1, output_padding=1): the baseline's; uneven overlap",
    "convT2": "ConvTranspose2d(k=2, s=2): kernel divisible by stride, no overlap (the original fix)",
    "resize": "nearest-neighbour resize x2, then Conv3x3 (Odena et al., 2016)",
}


def make_upsampler(kind: str, in_ch: int, out_ch: int, where: str = "up") -> nn.Module:
    """Double the resolution, mapping ``in_ch`` to ``out_ch`` channels."""
    if kind in _REGISTERED["up"]:
        return _REGISTERED["up"][kind](in_ch, out_ch)
    if kind == "convT3":
        return nn.ConvTranspose2d(in_ch, out_ch, kernel_size=3, stride=2, padding=1, output_padding=1)
    if kind == "convT2":
        return nn.ConvTranspose2d(in_ch, out_ch, kernel_size=2, stride=2)
    if kind == "resize":
        return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(in_ch, out_ch, 3, padding=1))
    raise CourseError(f"{where}: unknown upsampler {kind!r}; choose one of {known('up')}.")


class UpBlock(nn.Module):
    """Concatenate the skip, upsample x2, then ``n_convs`` ConvBlocks.

    ``norm_after_up`` puts a norm + activation straight after the upsampler, as the baseline does.
    """

    def __init__(self, in_ch: int, out_ch: int, norm: str, groups: int, act: str, up: str,
                 n_convs: int, norm_after_up: bool, where: str = "up"):
        super().__init__()
        layers: list[nn.Module] = [make_upsampler(up, 2 * in_ch, out_ch, where)]
        if norm_after_up:
            layers += [make_norm(norm, out_ch, groups, f"{where}.norm"), make_act(act)]
        layers += [ConvBlock(out_ch, out_ch, norm, groups, act, f"{where}.conv{i + 1}") for i in range(n_convs)]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.model(torch.cat((x, skip), 1))


class SinusoidalEmbedding(nn.Module):
    """Transformer-style sinusoidal features of a scalar (here t/T). It has no parameters.

    Frequencies are ``exp(-log(10000) * k / (dim/2 - 1))`` for k = 0..dim/2-1; the output is
    ``[sin(t * f_k), cos(t * f_k)]``, exactly as in the original course.
    """

    def __init__(self, dim: int):
        super().__init__()
        if dim < 4 or dim % 2:
            raise CourseError(f"sinusoidal time embedding: dim must be even and at least 4, got {dim}.")
        self.dim = dim

    def frequencies(self, device=None) -> torch.Tensor:
        half = self.dim // 2
        return torch.exp(torch.arange(half, device=device) * -(math.log(10000) / (half - 1)))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        args = t.float()[:, None] * self.frequencies(t.device)[None, :]
        return torch.cat((args.sin(), args.cos()), dim=-1)


class EmbedBlock(nn.Sequential):
    """Linear -> activation -> Linear, reshaped to (B, C, 1, 1) so it can be added to a feature map."""

    def __init__(self, in_dim: int, out_ch: int, act: str):
        super().__init__(nn.Linear(in_dim, out_ch), make_act(act), nn.Linear(out_ch, out_ch), nn.Unflatten(1, (out_ch, 1, 1)))
