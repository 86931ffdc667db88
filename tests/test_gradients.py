"""Gradient flow at initialization and the residual identity (course_utils.lessons.residual)."""
import pytest
import torch

import course_utils as cu
from course_utils.lessons import residual as g
from course_utils.errors import CourseError

# Seeded at initialization on a fixed batch of 32 training images (seed 0). CPUs with other thread counts
# or vector units sum in another order, so compare to 1e-3.
EXPECTED = {
    "sinusoidal": {"down0": 0.152887, "first_conv": 0.140914, "out": 1.995584, "loss": 1.118273},
    "residual": {"down0": 0.836841, "first_conv": 0.133828, "out": 3.037172, "loss": 1.097968},
    "optimized": {"down0": 1.645272, "first_conv": 0.259816, "out": 5.763515, "loss": 1.108810},
}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Small CPU jobs run far faster on one thread when other processes share the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def table(one_thread):
    return g.compare_presets(("sinusoidal", "residual", "optimized"), x0=g.fixed_batch(32), seed=0)


def test_seeded_gradient_norms(table):
    for preset, want in EXPECTED.items():
        for key, value in want.items():
            assert table[preset][key] == pytest.approx(value, rel=1e-3, abs=1e-5), (preset, key)
    for preset in EXPECTED:
        assert set(g.BLOCKS) <= set(table[preset])
        assert table[preset]["first_conv/out"] == pytest.approx(table[preset]["first_conv"] / table[preset]["out"])


def test_block_norm_is_the_root_sum_of_squares_of_its_layers():
    torch.manual_seed(0)
    model = cu.build("residual").train()
    x = g.fixed_batch(8)
    blocks = g.gradient_norms(model, x, seed=1)
    layers = g.gradient_norms(model, x, seed=1, per="layer")
    for b in g.BLOCKS:
        sq = sum(v ** 2 for k, v in layers.items() if k.split(".")[0] == b)
        assert blocks[b] == pytest.approx(sq ** 0.5, rel=1e-9)
    assert blocks["first_conv"] == layers["down0.conv1.0.weight"]
    assert all(p.grad is None for p in model.parameters())  # gradients cleared afterwards


def test_format_table(table):
    text = g.format_table(table, digits=2)
    lines = text.splitlines()
    assert lines[0].split() == ["block", "sinusoidal", "residual", "optimized"]
    assert lines[1].split() == ["down0", "0.15", "0.84", "1.65"]


def test_residual_identity():
    r = g.residual_identity()
    assert r["shape"] == (1, 4, 3, 3)
    assert r["identity_exact"] is True
    assert r["jacobian_size"] == 36
    assert r["jacobian_max_diff"] < 1e-12
    assert r["jacobian_f_norm"] > 1.0  # the I + df/dx1 rule is not "1 + something small" by construction
    assert r["zeroed_conv2_gives_x1"] is True


def test_bad_arguments():
    with pytest.raises(CourseError):
        g.gradient_norms(cu.build("baseline"), torch.zeros(2, 1, 16, 16), per="neuron")
    with pytest.raises(CourseError):
        g.gradient_norms(torch.nn.Linear(2, 2), torch.zeros(2, 2))
    with pytest.raises(CourseError):
        g.fixed_batch(0)


def test_figure(table):
    import matplotlib.pyplot as plt
    fig = g.figure(table)
    assert len(fig.axes[0].patches) == 3 * (len(g.BLOCKS) + 1)
    plt.close(fig)
