"""Property tests (hypothesis) for the pure functions: schedule, forward noising, rearrange, overlap maps,
activations and the checkerboard score."""
import numpy as np
import pytest
import torch
from einops import rearrange
from hypothesis import given, settings
from hypothesis import strategies as st

from course_utils.lessons import gelu as activations, checkerboard as upsampling
from course_utils.evaluation import metrics
from course_utils.model.blocks import RearrangePool
from course_utils.diffusion import Schedule
from course_utils.errors import CourseError

FAST = settings(max_examples=40, deadline=None)


@FAST
@given(T=st.integers(2, 400), lo=st.floats(1e-5, 0.01), span=st.floats(0.0, 0.2))
def test_schedule_is_monotone(T, lo, span):
    s = Schedule(T=T, beta_start=lo, beta_end=min(lo + span, 0.5))
    assert bool((s.betas[1:] >= s.betas[:-1]).all())
    assert bool((s.alpha_bar[1:] < s.alpha_bar[:-1]).all())
    assert bool((s.alpha_bar > 0).all()) and bool((s.alpha_bar < 1).all())
    assert bool((s.beta_tilde <= s.betas + 1e-7).all())


@FAST
@given(t=st.integers(0, 149), value=st.floats(-1, 1), seed=st.integers(0, 2**16))
def test_forward_noising_moments(t, value, seed):
    s = Schedule()
    g = torch.Generator().manual_seed(seed)
    n = 20000
    x0 = torch.full((n, 1, 1, 1), value)
    xt = s.q_sample(x0, torch.full((n,), t), torch.randn(x0.shape, generator=g))
    ab = float(s.alpha_bar[t])
    sd = (1 - ab) ** 0.5
    # 5 standard errors: fails by chance about once in 3 million draws
    assert abs(float(xt.mean()) - ab ** 0.5 * value) < 5 * sd / n ** 0.5
    assert abs(float(xt.std()) - sd) < 5 * sd / (2 * n) ** 0.5 + 1e-6


@FAST
@given(b=st.integers(1, 3), c=st.integers(1, 4), h=st.integers(1, 4), w=st.integers(1, 4),
       p1=st.integers(1, 3), p2=st.integers(1, 3), seed=st.integers(0, 1000))
def test_rearrange_round_trip_is_exact(b, c, h, w, p1, p2, seed):
    x = torch.randn(b, c, h * p1, w * p2, generator=torch.Generator().manual_seed(seed))
    y = rearrange(x, RearrangePool.pattern, p1=p1, p2=p2)
    assert y.shape == (b, c * p1 * p2, h, w)
    back = rearrange(y, "b (c p1 p2) h w -> b c (h p1) (w p2)", p1=p1, p2=p2)
    assert torch.equal(back, x)
    if p1 == p2:
        assert torch.equal(y, torch.nn.PixelUnshuffle(p1)(x))


def _transposed_sizes(n, k, s, p, op, layers):
    """Output side after each of ``layers`` ConvTranspose2d layers, by the formula (n - 1) s - 2p + k + op."""
    sizes = []
    for _ in range(layers):
        n = (n - 1) * s - 2 * p + k + op
        sizes.append(n)
        if n < 1:
            break
    return sizes


@FAST
@given(n=st.integers(2, 6), k=st.integers(1, 5), s=st.integers(1, 4), p=st.integers(0, 2), layers=st.integers(1, 2))
def test_overlap_counting_matches_the_real_layer(n, k, s, p, layers):
    sizes = _transposed_sizes(n, k, s, p, 0, layers)
    if min(sizes) < 1:  # a layer with no output pixels: a CourseError, never a wrong map
        for method in ("count", "torch"):
            with pytest.raises(CourseError, match="no output pixels"):
                upsampling.overlap_map(n, k, s, p, 0, layers, method=method)
        return
    counted = upsampling.overlap_map(n, k, s, p, 0, layers, method="count")
    ran = upsampling.overlap_map(n, k, s, p, 0, layers, method="torch")
    assert counted.shape == (sizes[-1], sizes[-1])
    assert np.array_equal(counted, ran)
    if k % s == 0:
        assert upsampling.transposed_unevenness(k, s, layers) == 1.0  # even overlap in the interior


@FAST
@given(x=st.lists(st.floats(-8, 8), min_size=1, max_size=50))
def test_activation_properties(x):
    t = torch.tensor(x, dtype=torch.float64)
    gelu, dgelu = activations.values_and_grads("gelu", t)
    relu, drelu = activations.values_and_grads("relu", t)
    assert bool((gelu <= relu + 1e-12).all())           # x * Phi(x) <= max(0, x)
    assert bool((gelu >= -0.17 - 1e-4).all())            # GELU's minimum is about -0.1700
    assert set(drelu.tolist()) <= {0.0, 1.0}
    assert bool((dgelu <= 1.13).all()) and bool((dgelu >= -0.13).all())


@FAST
@given(seed=st.integers(0, 10**6), c=st.floats(-1, 1), a=st.floats(-1, 1), n=st.sampled_from([2, 4, 8, 16]))
def test_checkerboard_score_properties(seed, c, a, n):
    x = torch.rand(3, 1, n, n, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    base = metrics.checkerboard_score(x)
    assert abs(metrics.checkerboard_score(x + c) - base) < 1e-5     # blind to brightness
    assert abs(metrics.checkerboard_score(-x) - base) < 1e-6        # blind to sign
    flat = torch.full((1, 1, n, n), c)
    pattern = metrics.checker_pattern(n, n)[None, None]
    assert abs(metrics.checkerboard_score(flat + a * pattern) - abs(a)) < 1e-5


# --- the widgets' compute functions ----------------------------------------------------------------------

from course_utils.widgets import checkerboard as cb_widget  # noqa: E402
from course_utils.widgets import rearrange_pooling as re_widget  # noqa: E402


@FAST
@given(size=st.integers(2, 8), channels=st.integers(1, 3), p1=st.integers(1, 3), p2=st.integers(1, 3),
       seed=st.integers(0, 100))
def test_rearrange_explorer_data(size, channels, p1, p2, seed):
    d = re_widget.explorer_data(size, channels, p1, p2, maxpool_input="labelled", seed=seed)
    assert d["valid"] == (size % p1 == 0 and size % p2 == 0)
    if not d["valid"]:
        assert "divisible" in d["message"]
        return
    assert d["round_trip_exact"] and np.array_equal(d["round_trip"], d["input"])
    out = d["output"]
    assert out.shape == (channels * p1 * p2, size // p1, size // p2)
    # a bijection: every input label appears exactly once in the output
    assert sorted(out.ravel().tolist()) == sorted(d["input"].ravel().tolist())
    for k, i, j in [(0, 0, 0), (out.shape[0] - 1, out.shape[1] - 1, out.shape[2] - 1)]:
        c, r, col = d["sources"][k, i, j]
        assert d["input"][c, r, col] == out[k, i, j]
    mp = d["maxpool"]
    assert mp["kept"] == channels * (size // p1) * (size // p2)  # labels are distinct: exactly one survivor per window


def test_checkerboard_explorer_data():
    """Every slider setting of the explorer gives a valid map, or ok=False with the reason."""
    import itertools
    lim, n = cb_widget.LIMITS, cb_widget.DEFAULT_N
    invalid = valid = 0
    for k, s, p, layers in itertools.product(*(range(lim[key][0], lim[key][1] + 1)
                                               for key in ("kernel", "stride", "padding", "layers"))):
        d = cb_widget.overlap_data(k, s, p, layers)
        op = s - k + 2 * p if 0 <= s - k + 2 * p < s else 0  # the output_padding that doubles the size, if any
        sizes = _transposed_sizes(n, k, s, p, op, layers)
        assert d["output_padding"] == op, (k, s, p, layers)
        assert d["ok"] == (min(sizes) >= 1), (k, s, p, layers, d["error"])  # invalid iff a layer has no pixels
        if not d["ok"]:
            assert "no output pixels" in d["error"]
            invalid += 1
            continue
        assert d["counts"].shape == (sizes[-1], sizes[-1])
        assert np.array_equal(d["counts"], np.outer(d["profile"], d["profile"]))
        assert d["divisible"] == (k % s == 0)
        if k % s == 0:
            assert d["unevenness"] == 1.0
        assert d["resize_unevenness"] == 1.0
        valid += 1
    assert valid > 0 and invalid > 0  # both branches checked (17 of 336 are invalid, e.g. k1 s1 p3 on 6x6)
