"""Fréchet distance (FID) and kernel inception distance (KID) between two sets of feature vectors.

Both compare *feature vectors* (here: the penultimate layer of the course's Fashion-MNIST
classifier, see ``course_utils.evaluation.classifier``), not pixels.

* **FID** fits a Gaussian to each set (mean mu, covariance S) and returns the Fréchet distance
  between the two Gaussians: |mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^{1/2}). The trace of the matrix
  square root is computed in float64 from the eigenvalues of the symmetric matrix
  S1^{1/2} S2 S1^{1/2}, which has the same eigenvalues as S1 S2 but is symmetric, so the result is
  real by construction; tiny negative eigenvalues from round-off are set to zero.
  FID is biased: even two sets drawn from the same distribution score above 0, and the gap grows
  as n shrinks. That is why the course always prints it beside the real-vs-real value at the same n.
* **KID** is the squared maximum mean discrepancy (MMD^2) with the cubic polynomial kernel
  k(x, y) = (x.y / d + 1)^3, estimated without bias (diagonal terms left out) and averaged over
  random subsets; it returns the mean and the standard deviation over subsets. Unbiased means it
  can come out slightly negative when the two sets match.

No SciPy or torchmetrics needed: everything is plain torch.
"""
from __future__ import annotations

import math

import torch

from course_utils.errors import CourseError


def _features(x, name: str = "features") -> torch.Tensor:
    x = torch.as_tensor(x)
    if x.ndim != 2:
        raise CourseError(f"{name} must be a 2-D array (n samples, d features), got shape {tuple(x.shape)}.")
    if x.shape[0] < 2:
        raise CourseError(f"{name} needs at least 2 samples to estimate a covariance, got {x.shape[0]}.")
    x = x.detach().to("cpu", torch.float64)
    if not torch.isfinite(x).all():
        raise CourseError(f"{name} contain NaN or infinite values; check the images fed to the classifier.")
    return x


def _same_dim(a: torch.Tensor, b: torch.Tensor) -> None:
    if a.shape[1] != b.shape[1]:
        raise CourseError(f"the two feature sets have different dimensions ({a.shape[1]} vs {b.shape[1]}); "
                          "extract both with the same classifier.")


def gaussian_stats(features) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (d,) and unbiased covariance (d, d) of features (n, d), in float64."""
    f = _features(features)
    mu = f.mean(0)
    c = f - mu
    return mu, c.T @ c / (f.shape[0] - 1)


def _sym_sqrt(s: torch.Tensor) -> torch.Tensor:
    """Square root of a symmetric positive semi-definite matrix (negative round-off eigenvalues -> 0)."""
    w, v = torch.linalg.eigh((s + s.T) / 2)
    return (v * w.clamp_min(0).sqrt()) @ v.T


def trace_sqrt_product(s1: torch.Tensor, s2: torch.Tensor) -> float:
    """Tr((S1 S2)^{1/2}) for symmetric PSD S1, S2, via the eigenvalues of S1^{1/2} S2 S1^{1/2}."""
    s1 = torch.as_tensor(s1, dtype=torch.float64)
    s2 = torch.as_tensor(s2, dtype=torch.float64)
    r = _sym_sqrt(s1)
    m = r @ s2 @ r
    w = torch.linalg.eigvalsh((m + m.T) / 2)
    return float(w.clamp_min(0).sqrt().sum())


def frechet_distance(mu1, s1, mu2, s2) -> float:
    """Fréchet distance between N(mu1, S1) and N(mu2, S2): |mu1-mu2|^2 + Tr(S1) + Tr(S2) - 2 Tr((S1 S2)^{1/2})."""
    mu1, mu2 = (torch.as_tensor(m, dtype=torch.float64).reshape(-1) for m in (mu1, mu2))
    s1, s2 = (torch.as_tensor(s, dtype=torch.float64) for s in (s1, s2))
    d = mu1.numel()
    if mu2.numel() != d or s1.shape != (d, d) or s2.shape != (d, d):
        raise CourseError(f"shapes do not match: mu1 {tuple(mu1.shape)}, mu2 {tuple(mu2.shape)}, "
                          f"S1 {tuple(s1.shape)}, S2 {tuple(s2.shape)}; expected (d,) and (d, d).")
    diff = float(((mu1 - mu2) ** 2).sum())
    value = diff + float(torch.trace(s1) + torch.trace(s2)) - 2 * trace_sqrt_product(s1, s2)
    return max(value, 0.0)  # a true distance is >= 0; round-off can give -1e-12


def fid_from_features(f1, f2) -> float:
    """FID between two feature sets (n1, d) and (n2, d)."""
    a, b = _features(f1, "first features"), _features(f2, "second features")
    _same_dim(a, b)
    return frechet_distance(*gaussian_stats(a), *gaussian_stats(b))


def polynomial_kernel(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """k(x, y) = (x.y / d + 1)^3 for all pairs: (n, d), (m, d) -> (n, m)."""
    return (x @ y.T / x.shape[1] + 1) ** 3


def _mmd2_from_kernels(kxx: torch.Tensor, kyy: torch.Tensor, kxy: torch.Tensor) -> float:
    m, n = kxx.shape[0], kyy.shape[0]
    sxx = (kxx.sum() - kxx.diagonal().sum()) / (m * (m - 1))
    syy = (kyy.sum() - kyy.diagonal().sum()) / (n * (n - 1))
    return float(sxx + syy - 2 * kxy.mean())


def mmd2_unbiased(x, y) -> float:
    """Unbiased MMD^2 with the cubic polynomial kernel between all of x (m, d) and all of y (n, d)."""
    a, b = _features(x, "first features"), _features(y, "second features")
    _same_dim(a, b)
    return _mmd2_from_kernels(polynomial_kernel(a, a), polynomial_kernel(b, b), polynomial_kernel(a, b))


def default_subset_size(n: int) -> int:
    """Half of the smaller set, at most 500 (so subsets differ and the spread means something), at least 2."""
    return max(2, min(500, n // 2))


def kid_from_features(f1, f2, subsets: int = 100, subset_size: int | None = None,
                      seed: int = 0) -> tuple[float, float]:
    """KID: (mean, std) over ``subsets`` random subsets (without replacement) of the unbiased MMD^2.

    The three kernel matrices are computed once for the full sets; each subset only indexes them.
    With ``subset_size`` equal to both set sizes every subset is the whole set and std is 0.
    """
    a, b = _features(f1, "first features"), _features(f2, "second features")
    _same_dim(a, b)
    if subsets < 1:
        raise CourseError(f"subsets must be at least 1, got {subsets}.")
    m = default_subset_size(min(len(a), len(b))) if subset_size is None else int(subset_size)
    if not 2 <= m <= min(len(a), len(b)):
        raise CourseError(f"subset_size must lie in [2, {min(len(a), len(b))}] (the smaller set), got {m}.")
    kxx, kyy, kxy = polynomial_kernel(a, a), polynomial_kernel(b, b), polynomial_kernel(a, b)
    gen = torch.Generator().manual_seed(int(seed))
    values = []
    for _ in range(subsets):
        i = torch.randperm(len(a), generator=gen)[:m]
        j = torch.randperm(len(b), generator=gen)[:m]
        values.append(_mmd2_from_kernels(kxx[i][:, i], kyy[j][:, j], kxy[i][:, j]))
    v = torch.tensor(values, dtype=torch.float64)
    std = float(v.std()) if len(values) > 1 else 0.0
    return float(v.mean()), 0.0 if math.isnan(std) else std
