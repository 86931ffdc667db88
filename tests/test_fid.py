"""Fréchet distance and KID on cases with known answers, and against brute-force implementations."""
import math

import numpy as np
import pytest
import torch

from course_utils.errors import CourseError
from course_utils.evaluation.fid import (fid_from_features, frechet_distance, gaussian_stats, kid_from_features,
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


@pytest.mark.parametrize("call, match", [
    (lambda: fid_from_features(torch.zeros(5), torch.zeros(5, 2)), r"must be a 2-D array .* got shape \(5,\)"),
    (lambda: fid_from_features(torch.zeros(1, 3), torch.zeros(4, 3)), "needs at least 2 samples .* got 1"),
    (lambda: fid_from_features(torch.zeros(4, 3), torch.zeros(4, 2)), r"different dimensions \(3 vs 2\)"),
    (lambda: fid_from_features(torch.full((4, 3), math.nan), torch.zeros(4, 3)), "NaN or infinite"),
    (lambda: kid_from_features(torch.zeros(4, 3), torch.zeros(4, 3), subset_size=5), r"subset_size must lie in \[2, 4\]"),
    (lambda: kid_from_features(torch.zeros(4, 3), torch.zeros(4, 3), subsets=0), "subsets must be at least 1, got 0"),
    (lambda: frechet_distance(torch.zeros(2), torch.eye(3), torch.zeros(2), torch.eye(2)), "shapes do not match"),
])
def test_bad_inputs_raise_course_error(call, match):
    with pytest.raises(CourseError, match=match):  # each for its own reason, not a check that fires first
        call()


# --- cross-checks against independent implementations on the same features ---------------------------------

def _two_gaussians(seed):
    """300 x 64 features from two different Gaussians (shifted mean, other correlations and scales), and a third
    set from the first Gaussian again (identical distributions)."""
    g = torch.Generator().manual_seed(seed)
    d = 64
    mix_a = torch.randn(d, d, generator=g, dtype=torch.float64) / d ** 0.5
    mix_b = torch.randn(d, d, generator=g, dtype=torch.float64) / d ** 0.5
    a = torch.randn(300, d, generator=g, dtype=torch.float64) @ mix_a
    b = 0.3 + 1.5 * torch.randn(300, d, generator=g, dtype=torch.float64) @ mix_b
    a2 = torch.randn(300, d, generator=g, dtype=torch.float64) @ mix_a
    return a, b, a2


class _Features(torch.nn.Module):
    """torchmetrics' custom `feature` extractor: the "images" fed to update() are already the features."""

    num_features = 64  # read by FrechetInceptionDistance instead of probing the module with a dummy image

    def forward(self, x):
        return x


@pytest.mark.filterwarnings("ignore:Metric `Kernel Inception Distance` will save all extracted features")
def test_fid_and_kid_match_torchmetrics():
    tm_fid = pytest.importorskip("torchmetrics.image.fid", reason="cross-check needs `pip install torchmetrics`")
    tm_kid = pytest.importorskip("torchmetrics.image.kid")
    a, b, a2 = _two_gaussians(seed=20)
    for x, y in ((a, b), (a, a2), (b, a)):
        m = tm_fid.FrechetInceptionDistance(feature=_Features())
        m.update(x, real=True)
        m.update(y, real=False)
        ref = float(m.compute())  # float64 throughout: the features are float64
        assert fid_from_features(x, y) == pytest.approx(ref, rel=1e-6)
    assert fid_from_features(a, b) > 10 * fid_from_features(a, a2) > 0  # the cases differ, so they test something
    # KID with one subset holding every sample: the subset order does not matter, so torchmetrics' own (unseeded)
    # permutation gives exactly the full-set unbiased MMD^2
    for x, y in ((a, b), (a, a2)):
        k = tm_kid.KernelInceptionDistance(feature=_Features(), subsets=1, subset_size=300)
        k.update(x, real=True)
        k.update(y, real=False)
        ref_mean, _ = k.compute()
        mean, std = kid_from_features(x, y, subsets=1, subset_size=300)
        assert mean == pytest.approx(float(ref_mean), rel=1e-9, abs=1e-12) and std == 0.0
    # random subsets: the same subsets fid.py draws (seeded generator, a's permutation then b's), each scored by
    # torchmetrics' poly_mmd; fid.py's spread is the sample standard deviation (ddof=1)
    mean, std = kid_from_features(a, b, subsets=7, subset_size=50, seed=5)
    gen = torch.Generator().manual_seed(5)
    vals = []
    for _ in range(7):
        i, j = torch.randperm(300, generator=gen)[:50], torch.randperm(300, generator=gen)[:50]
        vals.append(float(tm_kid.poly_mmd(a[i], b[j])))
    assert mean == pytest.approx(np.mean(vals), rel=1e-9) and std == pytest.approx(np.std(vals, ddof=1), rel=1e-9)


def _fid_numpy(x, y):
    """The pytorch-fidelity / pytorch-fid formula with numpy: Tr((S1 S2)^{1/2}) from the eigenvalues of S1 S2."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    mu1, mu2 = x.mean(0), y.mean(0)
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    tr_sqrt = np.sqrt(np.linalg.eigvals(s1 @ s2).astype(complex)).real.sum()
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * tr_sqrt)


def _mmd2_numpy(x, y):
    """Unbiased MMD^2 with k(x, y) = (x.y / d + 1)^3, by the textbook formula over index pairs i != j."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    d, m, n = x.shape[1], len(x), len(y)
    kxx, kyy, kxy = ((p @ q.T / d + 1) ** 3 for p, q in ((x, x), (y, y), (x, y)))
    off = lambda k: k[~np.eye(len(k), dtype=bool)].sum()  # noqa: E731
    return off(kxx) / (m * (m - 1)) + off(kyy) / (n * (n - 1)) - 2 * kxy.sum() / (m * n)


def test_fid_and_kid_match_numpy_reference():
    """The same cross-check without torchmetrics: numpy's covariance and eigenvalues, a direct MMD^2."""
    a, b, a2 = _two_gaussians(seed=21)
    for x, y in ((a, b), (a, a2), (b[:200], a)):
        assert fid_from_features(x, y) == pytest.approx(_fid_numpy(x, y), rel=1e-6)
        assert mmd2_unbiased(x, y) == pytest.approx(_mmd2_numpy(x, y), rel=1e-9, abs=1e-12)
    mean, std = kid_from_features(a, b, subsets=1, subset_size=300)
    assert mean == pytest.approx(_mmd2_numpy(a, b), rel=1e-9) and std == 0.0
