"""Fréchet distance and KID on cases with known answers, and against brute-force implementations."""
import math

import numpy as np
import pytest
import torch

from course_utils.errors import CourseError
from course_utils.fid import (fid_from_features, frechet_distance, gaussian_stats, kid_from_features,
                              mmd2_unbiased, polynomial_kernel, trace_sqrt_product)


pytestmark = pytest.mark.usefixtures("one_thread")


def _gauss(n, mu, std, seed):
    g = torch.Generator().manual_seed(seed)
    mu, std = torch.as_tensor(mu, dtype=torch.float64), torch.as_tensor(std, dtype=torch.float64)
    return mu + std * torch.randn(n, len(mu), generator=g, dtype=torch.float64)


def test_fid_tiny_exact():
    # 1-D: means 1 and 2, unbiased variances 2 and 2 -> (1-2)^2 + 2 + 2 - 2*sqrt(2*2) = 1
    assert fid_from_features([[0.0], [2.0]], [[1.0], [3.0]]) == pytest.approx(1.0, abs=1e-12)


def test_frechet_closed_form_diagonal():
    mu1, mu2 = torch.tensor([0.0, 1.0, -2.0, 0.5]), torch.tensor([1.0, 1.0, 0.0, -0.5])
    s1, s2 = torch.tensor([1.0, 4.0, 0.25, 2.0]), torch.tensor([9.0, 1.0, 0.25, 0.5])
    expected = float(((mu1 - mu2) ** 2).sum() + (s1 + s2 - 2 * (s1 * s2).sqrt()).sum())
    assert expected == pytest.approx(6.0 + (4 + 1 + 0 + 0.5))  # by hand: |dmu|^2 = 1 + 0 + 4 + 1; then 4, 1, 0, 0.5
    got = frechet_distance(mu1, torch.diag(s1), mu2, torch.diag(s2))
    assert got == pytest.approx(expected, abs=1e-10)


def test_frechet_rotation_invariant_and_matches_eigvals_of_product():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(6, 6, generator=g, dtype=torch.float64), torch.randn(6, 6, generator=g, dtype=torch.float64)
    s1, s2 = a @ a.T + 0.1 * torch.eye(6, dtype=torch.float64), b @ b.T
    # brute force: Tr((S1 S2)^{1/2}) = sum of sqrt of the (real, non-negative) eigenvalues of S1 S2
    brute = np.sqrt(np.clip(np.linalg.eigvals(s1.numpy() @ s2.numpy()).real, 0, None)).sum()
    assert trace_sqrt_product(s1, s2) == pytest.approx(brute, rel=1e-9)
    q, _ = torch.linalg.qr(torch.randn(6, 6, generator=g, dtype=torch.float64))
    mu1, mu2 = torch.randn(6, generator=g, dtype=torch.float64), torch.randn(6, generator=g, dtype=torch.float64)
    d = frechet_distance(mu1, s1, mu2, s2)
    assert frechet_distance(q @ mu1, q @ s1 @ q.T, q @ mu2, q @ s2 @ q.T) == pytest.approx(d, rel=1e-9)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(frechet_distance(mu2, s2, mu1, s1), rel=1e-9)


def test_fid_identical_and_same_distribution():
    x = _gauss(500, [0.0] * 8, [1.0] * 8, seed=1)
    assert fid_from_features(x, x) == pytest.approx(0.0, abs=1e-9)
    a = _gauss(20000, [0.0, 1.0, 2.0], [1.0, 2.0, 0.5], seed=2)
    b = _gauss(20000, [0.0, 1.0, 2.0], [1.0, 2.0, 0.5], seed=3)
    assert fid_from_features(a, b) < 2e-3


def test_fid_samples_approach_closed_form():
    mu1, mu2, s1, s2 = [0.0, 0.0], [1.0, -1.0], [1.0, 2.0], [3.0, 0.5]
    a, b = _gauss(20000, mu1, s1, seed=4), _gauss(20000, mu2, s2, seed=5)
    v1, v2 = torch.tensor(s1) ** 2, torch.tensor(s2) ** 2
    exact = 2.0 + float((v1 + v2 - 2 * (v1 * v2).sqrt()).sum())
    assert fid_from_features(a, b) == pytest.approx(exact, rel=0.02)


def test_fid_translation():
    a, b = _gauss(300, [0.0] * 5, [1.0] * 5, 6), _gauss(300, [0.5] * 5, [1.5] * 5, 7)
    c = torch.arange(5, dtype=torch.float64)
    assert fid_from_features(a + c, b + c) == pytest.approx(fid_from_features(a, b), rel=1e-9)
    mu_a, cov_a = gaussian_stats(a)
    mu_b, cov_b = gaussian_stats(b)
    shifted = frechet_distance(mu_a + c, cov_a, mu_b, cov_b)
    base = frechet_distance(mu_a, cov_a, mu_b, cov_b)
    # only the mean term changes: |mu_a + c - mu_b|^2 - |mu_a - mu_b|^2
    delta = float(((mu_a + c - mu_b) ** 2).sum() - ((mu_a - mu_b) ** 2).sum())
    assert shifted - base == pytest.approx(delta, rel=1e-9)


def test_mmd_tiny_exact():
    # d = 1: k(0, 0) = 1, k(1, 1) = (1 + 1)^3 = 8, k(0, 1) = 1 -> MMD^2 = 1 + 8 - 2 * 1 = 7
    assert mmd2_unbiased([[0.0], [0.0]], [[1.0], [1.0]]) == pytest.approx(7.0, abs=1e-12)
    assert polynomial_kernel(torch.tensor([[1.0, 1.0]]), torch.tensor([[2.0, 0.0]])).item() == pytest.approx(8.0)


def _mmd_brute(x, y):
    k = lambda a, b: (float(np.dot(a, b)) / len(a) + 1) ** 3  # noqa: E731
    m, n = len(x), len(y)
    sxx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    syy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    sxy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return sxx + syy - 2 * sxy


def test_mmd_matches_brute_force_and_is_symmetric():
    x, y = _gauss(7, [0.0] * 3, [1.0] * 3, 8), _gauss(9, [0.3] * 3, [0.7] * 3, 9)
    brute = _mmd_brute(x.numpy(), y.numpy())
    assert mmd2_unbiased(x, y) == pytest.approx(brute, rel=1e-10)
    assert mmd2_unbiased(y, x) == pytest.approx(brute, rel=1e-10)


def test_kid_subsets_match_brute_force():
    x, y = _gauss(30, [0.0] * 4, [1.0] * 4, 10), _gauss(40, [0.5] * 4, [1.0] * 4, 11)
    mean, std = kid_from_features(x, y, subsets=5, subset_size=10, seed=3)
    g = torch.Generator().manual_seed(3)
    vals = []
    for _ in range(5):
        i, j = torch.randperm(30, generator=g)[:10], torch.randperm(40, generator=g)[:10]
        vals.append(_mmd_brute(x[i].numpy(), y[j].numpy()))
    assert mean == pytest.approx(np.mean(vals), rel=1e-9)
    assert std == pytest.approx(np.std(vals, ddof=1), rel=1e-6)


def test_kid_identical_symmetric_and_different():
    x = _gauss(400, [0.0] * 6, [1.0] * 6, 12)
    y = _gauss(400, [0.0] * 6, [1.0] * 6, 13)
    z = _gauss(400, [1.0] * 6, [1.0] * 6, 14)
    same, _ = kid_from_features(x, x, subsets=20)
    assert abs(same) < 0.1  # O(1/subset_size): the unbiased estimate leaves out only the diagonal
    indep, _ = kid_from_features(x, y, subsets=20)
    far, far_std = kid_from_features(x, z, subsets=20)
    assert abs(indep) < 0.05 and far > 1.0 and far > 10 * far_std
    full_xy, std_xy = kid_from_features(x, z, subsets=3, subset_size=400)
    full_zx, _ = kid_from_features(z, x, subsets=3, subset_size=400)
    assert full_xy == pytest.approx(full_zx, rel=1e-12)
    assert full_xy == pytest.approx(mmd2_unbiased(x, z), rel=1e-12) and std_xy < 1e-9


@pytest.mark.parametrize("call", [
    lambda: fid_from_features(torch.zeros(5), torch.zeros(5, 2)),
    lambda: fid_from_features(torch.zeros(1, 3), torch.zeros(4, 3)),
    lambda: fid_from_features(torch.zeros(4, 3), torch.zeros(4, 2)),
    lambda: fid_from_features(torch.full((4, 3), math.nan), torch.zeros(4, 3)),
    lambda: kid_from_features(torch.zeros(4, 3), torch.zeros(4, 3), subset_size=5),
    lambda: kid_from_features(torch.zeros(4, 3), torch.zeros(4, 3), subsets=0),
    lambda: frechet_distance(torch.zeros(2), torch.eye(3), torch.zeros(2), torch.eye(2)),
])
def test_bad_inputs_raise_course_error(call):
    with pytest.raises(CourseError):
        call()
