"""Image-quality measurements that need no classifier: the checkerboard score and spectra.

The checkerboard score of an image x (H x W) is |mean_ij (-1)^(i+j) x_ij|: the amplitude of the
highest spatial frequency (the Nyquist frequency in both directions), exactly the pattern that
transposed convolutions with uneven overlap print. We report its mean over images, always beside
the same score of real images.
"""
from __future__ import annotations

import torch

from course_utils.errors import CourseError


def _as_images(x: torch.Tensor) -> torch.Tensor:
    x = torch.as_tensor(x).float()
    if x.ndim == 2:
        x = x[None, None]
    elif x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4:
        raise CourseError(f"expected images (N, C, H, W), (N, H, W) or (H, W), got shape {tuple(x.shape)}. "
                          "Fix: pass a batch of images, e.g. samples of shape (N, 1, 16, 16).")
    return x


def checker_pattern(h: int, w: int) -> torch.Tensor:
    i = torch.arange(h)[:, None]
    j = torch.arange(w)[None, :]
    return 1.0 - 2.0 * ((i + j) % 2).float()  # +1 on even squares, -1 on odd


def nyquist_amplitude(x: torch.Tensor) -> torch.Tensor:
    """Per image |mean_ij (-1)^(i+j) x_ij| (averaged over channels), shape (N,)."""
    x = _as_images(x)
    pat = checker_pattern(x.shape[-2], x.shape[-1]).to(x.device)
    return (x * pat).mean(dim=(-2, -1)).abs().mean(dim=1)


def checkerboard_score(x: torch.Tensor) -> float:
    """Mean over images of the Nyquist amplitude (pixel units of x; the course uses [-1, 1])."""
    return float(nyquist_amplitude(x).mean())


def nyquist_energy_fraction(x: torch.Tensor) -> float:
    """Share of the (mean-removed) 2-D spectral energy at the (H/2, W/2) Nyquist bin, averaged over images."""
    x = _as_images(x)
    x = x - x.mean(dim=(-2, -1), keepdim=True)
    spec = torch.fft.fft2(x).abs() ** 2
    h, w = x.shape[-2:]
    total = spec.sum(dim=(-2, -1)).clamp_min(1e-12)
    return float((spec[..., h // 2, w // 2] / total).mean())


def mean_spectrum(x: torch.Tensor) -> torch.Tensor:
    """log10 of the mean power spectrum, zero frequency in the centre (for figures)."""
    x = _as_images(x)
    x = x - x.mean(dim=(-2, -1), keepdim=True)
    spec = (torch.fft.fft2(x).abs() ** 2).mean(dim=(0, 1))
    return torch.log10(torch.fft.fftshift(spec) + 1e-8)


def dark_fraction(x: torch.Tensor, threshold: float = -0.9) -> float:
    """Share of pixels darker than ``threshold`` (in [-1, 1]): real Fashion-MNIST backgrounds are near -1."""
    return float((_as_images(x) < threshold).float().mean())
