"""Notebook 07's checked exercises: a residual block's forward pass, and the gradient that reaches x1.

References: :class:`course_utils.model.blocks.ResidualConvBlock` (``out = x1 + conv2(x1)``, ``x1 = conv1(x)``) and,
for the gradient, autograd through ``out = x1 + f(x1)``.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from course_utils.exercises.checking import Case, Hints, checker, run_check, tensor_comparer
from course_utils.model.blocks import ConvBlock, ResidualConvBlock

ANSWERS = "answers/07_residual_blocks.md"


def _randn(*shape, seed, dtype=torch.float32):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _block(in_ch, out_ch, norm, groups, act, seed) -> ResidualConvBlock:
    torch.manual_seed(seed)
    block = ResidualConvBlock(in_ch, out_ch, norm, groups, act)
    return block.eval()


def residual_forward_cases() -> list[Case]:
    specs = [  # name, in, out, norm, groups, act, input shape
        ("the optimized U-Net's first block: 1 -> 64 channels, GroupNorm(8), GELU", 1, 64, "group", 8, "gelu",
         (2, 1, 16, 16)),
        ("3 -> 8 channels on a 4x4 map", 3, 8, "group", 4, "gelu", (1, 3, 4, 4)),
        ("same width in and out: 8 -> 8", 8, 8, "group", 2, "relu", (2, 8, 5, 5)),
        ("BatchNorm (eval mode) and ReLU, a batch of 3", 2, 4, "batch", 1, "relu", (3, 2, 6, 6)),
    ]
    cases = []
    for k, (name, cin, cout, norm, groups, act, shape) in enumerate(specs):
        block = _block(cin, cout, norm, groups, act, seed=700 + k)
        x = _randn(*shape, seed=710 + k)
        with torch.no_grad():
            expected = copy.deepcopy(block)(x)
        cases.append(Case(name, {"x": x, "conv1": block.conv1, "conv2": block.conv2}, expected,
                          shown={"conv1": f"ConvBlock({cin} -> {cout}, {norm}, {act})",
                                 "conv2": f"ConvBlock({cout} -> {cout}, {norm}, {act})"}))
    x = _randn(2, 3, 4, 4, seed=790)
    cases.append(Case("conv1 = conv2 = identity: out = x + x", {"x": x, "conv1": nn.Identity(), "conv2": nn.Identity()},
                      2 * x, shown={"conv1": "nn.Identity()", "conv2": "nn.Identity()"}))
    return cases


@checker(nudge="the first block changes the number of channels, so the input itself cannot be added; the shortcut "
               "goes around the second block only.",
         formula="out = x1 + F(x1), where x1 is the first block's output and F the second block (each block is a "
                 "module you call on a tensor).")
def check_residual_forward(student_fn, hints: Hints) -> bool | None:
    """``residual_forward(x, conv1, conv2)``: x1 = conv1(x); out = x1 + conv2(x1)."""
    return run_check("residual_forward", student_fn, residual_forward_cases(), tensor_comparer(1e-5, 1e-6), hints)


def residual_grad_reference(x1: torch.Tensor, f, grad_out: torch.Tensor) -> torch.Tensor:
    x1 = x1.detach().clone().requires_grad_(True)
    out = x1 + f(x1)
    (g,) = torch.autograd.grad(out, x1, grad_out)
    return g


def residual_grad_cases() -> list[Case]:
    dt = torch.float64
    torch.manual_seed(720)
    conv = ConvBlock(4, 4, "group", 2, "gelu").double().eval()
    torch.manual_seed(721)
    plain = nn.Conv2d(3, 3, 3, padding=1).double()
    zero = nn.Conv2d(3, 3, 3, padding=1).double()
    nn.init.zeros_(zero.weight)
    nn.init.zeros_(zero.bias)
    specs = [
        ("f = ConvBlock(4 -> 4, GroupNorm(2), GELU)", (2, 4, 5, 5), conv, "ConvBlock(4 -> 4, group, gelu)"),
        ("f = a plain 3x3 convolution", (1, 3, 4, 4), plain, "Conv2d(3, 3, 3, padding=1)"),
        ("f = a convolution with all weights 0: the gradient passes unchanged", (1, 3, 4, 4), zero,
         "Conv2d(3, 3, 3, padding=1) with weights and bias 0"),
        ("f = identity: the gradient doubles", (2, 2, 3, 3), nn.Identity(), "nn.Identity()"),
        ("f = tanh (no parameters)", (2, 3, 3, 3), nn.Tanh(), "nn.Tanh()"),
    ]
    cases = []
    for k, (name, shape, f, shown) in enumerate(specs):
        x1 = _randn(*shape, seed=730 + k, dtype=dt)
        grad_out = _randn(*shape, seed=740 + k, dtype=dt)
        cases.append(Case(name, {"x1": x1, "f": f, "grad_out": grad_out}, residual_grad_reference(x1, f, grad_out),
                          shown={"f": shown}))
    return cases


@checker(nudge="the gradient reaches x1 along two paths and they add up: the shortcut passes it on unchanged, and "
               "the branch passes it back through its own derivative.",
         formula="∂L/∂x1 = grad_out + J_f(x1)ᵀ grad_out. API: torch.autograd.grad(outputs, inputs, grad_outputs) "
                 "returns a tuple with the second term; the input must require gradients "
                 "(x1.detach().clone().requires_grad_(True)).")
def check_residual_grad(student_fn, hints: Hints) -> bool | None:
    """``residual_grad(x1, f, grad_out)``: dL/dx1 for out = x1 + f(x1), given dL/dout = grad_out."""
    return run_check("residual_grad", student_fn, residual_grad_cases(), tensor_comparer(1e-7, 1e-9), hints)
