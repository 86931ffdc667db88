"""What a U-Net costs: floating-point operations counted by ``torch.utils.flop_counter.FlopCounterMode``.

The counter adds up the matrix work (convolutions, transposed convolutions, linear layers), forward and
backward; normalizations and activations are a few percent on top and are not counted. Every counted
operation is linear in the batch size, so a count at batch 1 times 128 is exactly the count at batch 128
(``tests/test_cost.py`` checks this), which keeps ``variants`` fast.
"""
from __future__ import annotations

from functools import lru_cache

import torch
from torch.utils.flop_counter import FlopCounterMode

from course_utils.model.unet import UNet, UNetConfig, get_preset

BATCH = 128


def _config(preset_or_config) -> UNetConfig:
    return preset_or_config if isinstance(preset_or_config, UNetConfig) else get_preset(preset_or_config).config


@lru_cache(maxsize=64)
def _flops_per_image(cfg: UNetConfig) -> tuple[int, int]:
    """(forward FLOPs, forward + backward FLOPs) for one image."""
    torch.manual_seed(0)
    model = UNet(cfg).train()
    x = torch.randn(1, cfg.img_channels, cfg.img_size, cfg.img_size)
    t = torch.zeros(1, dtype=torch.long)
    with FlopCounterMode(display=False) as fwd:
        with torch.no_grad():
            model(x, t)
    with FlopCounterMode(display=False) as both:
        model(x, t).square().mean().backward()
    return fwd.get_total_flops(), both.get_total_flops()


def train_gflops(preset_or_config, batch: int = BATCH) -> float:
    """GFLOP of one training step on ``batch`` images (forward and backward)."""
    return _flops_per_image(_config(preset_or_config))[1] * batch / 1e9


def sample_gflops_per_image(preset_or_config, steps: int | None = None) -> float:
    """GFLOP to draw one image: one forward pass per sampling step (``steps``, default all T)."""
    cfg = _config(preset_or_config)
    return _flops_per_image(cfg)[0] * (cfg.T if steps is None else steps) / 1e9
