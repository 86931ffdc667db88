"""The sinusoidal time embedding measured (course_utils.lessons.time_embedding): t/T versus integer t, dim 8, T = 150."""
import math

import pytest
import torch

import course_utils as cu
from course_utils.lessons import time_embedding as te
from course_utils.model.blocks import SinusoidalEmbedding
from course_utils.errors import CourseError


def test_table_uses_the_block_and_its_formula():
    table = te.embedding_table("t/T", 150, 8)
    assert table.shape == (150, 8)
    f = [math.exp(-math.log(10000) * k / 3) for k in range(4)]
    s = 37 / 150
    expect = [math.sin(s * fk) for fk in f] + [math.cos(s * fk) for fk in f]
    assert table[37].tolist() == pytest.approx(expect, abs=1e-6)
    assert torch.equal(te.embedding_table("integer"), SinusoidalEmbedding(8)(torch.arange(150).float()))
    assert te.embedding_table("integer")[0].tolist() == [0, 0, 0, 0, 1, 1, 1, 1]


def test_summary_t_over_T():
    s = te.summarize("t/T")
    assert s["neighbour_min"] == pytest.approx(0.006674, abs=2e-6)
    assert s["neighbour_max"] == pytest.approx(0.006674, abs=2e-6)
    assert s["diameter"] == pytest.approx(0.9541, abs=1e-4)
    assert s["distinct"] == 150
    assert s["near_duplicate_pairs"] == 1022
    assert s["monotone_in_gap"] is True
    assert s["affine_residual"] == pytest.approx(0.0167, abs=1e-4)
    assert s["directions_over_1pct"] == 2
    assert s["top2_share"] > 0.99999
    assert s["max_angle"][0] == pytest.approx(149 / 150, abs=1e-6)


def test_summary_integer():
    s = te.summarize("integer")
    assert s["neighbour_min"] == pytest.approx(0.9600, abs=1e-4)
    assert s["closest_nonadjacent"] == pytest.approx(0.3282, abs=1e-4)
    assert s["closest_nonadjacent_gap"] == 132  # about 21 turns of the fastest frequency (21 * 2 pi = 131.9)
    assert s["near_duplicate_pairs"] == 0
    assert s["monotone_in_gap"] is False
    assert s["affine_residual"] == pytest.approx(0.9065, abs=1e-4)
    assert s["directions_over_1pct"] == 4
    assert s["max_angle"][0] == 149.0


def test_distance_depends_only_on_the_gap():
    d = te.pairwise_distances(te.embedding_table("integer"))
    assert torch.allclose(d[10, 142], d[0, 132], atol=1e-6)
    assert torch.allclose(d.diagonal(1), d[0, 1].expand(149), atol=1e-6)


def test_parameter_counts():
    p = te.time_mlp_params()
    assert p == {"sinusoid": 0, "mlp_to_128": 17664, "mlp_to_64": 4736, "mlps_total": 22400,
                 "mlps_total_with_t/T_input": 21056}
    m_sin, m_lin = cu.build("sinusoidal"), cu.build("rearrange")
    assert cu.count_params(m_sin.time_features) == 0
    assert cu.count_params(m_sin) - cu.count_params(m_lin) == 22400 - 21056 == 1344


def test_bad_arguments():
    with pytest.raises(CourseError, match="unknown mode"):
        te.embedding_table("seconds")
    with pytest.raises(CourseError):
        te.embedding_table("t/T", T=1)
    with pytest.raises(CourseError):
        te.embedding_table("t/T", dim=7)


def test_summarize_values_and_table_text():
    t = torch.arange(150).float()
    assert te.summarize_values(t / 150) == {k: v for k, v in te.summarize("t/T").items() if k != "mode"}
    s = te.summarize_values(1000 * t / 150)
    assert s["max_angle"][0] == pytest.approx(1000 * 149 / 150, rel=1e-6)
    text = te.format_summary([te.summarize(m) for m in te.MODES])
    assert "1022 of 11175" in text and "0 of 11175" in text
    with pytest.raises(CourseError):
        te.summarize_values(torch.zeros(2))


def test_figure():
    import matplotlib.pyplot as plt
    fig = te.figure()
    assert len(fig.axes) >= 4
    plt.close(fig)
