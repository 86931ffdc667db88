"""Rearrange pooling (course_utils.lessons.rearrange_pooling) and the rearrange explorer widget: exact numbers and properties."""
import pytest
import torch
from torch import nn

import course_utils as cu
from course_utils.lessons import rearrange_pooling as P
from course_utils.errors import CourseError
from course_utils.widgets import rearrange_pooling as R


def test_labelled_grid_and_space_to_depth_4x4():
    x = P.labelled_grid(1, 4)
    assert x.shape == (1, 1, 4, 4)
    assert x.flatten().tolist() == list(range(16))
    y = P.space_to_depth(x, 2, 2)
    assert y.shape == (1, 4, 2, 2)
    assert y[0].flatten(1).tolist() == [[0, 2, 8, 10], [1, 3, 9, 11], [4, 6, 12, 14], [5, 7, 13, 15]]


def test_source_map_matches_the_formula():
    c, h, w, p1, p2 = 2, 6, 4, 3, 2
    src = P.source_map(c, h, w, p1, p2)
    assert src.shape == (c * p1 * p2, h // p1, w // p2, 3)
    for k in range(c * p1 * p2):
        ch, rest = divmod(k, p1 * p2)
        a, b = divmod(rest, p2)
        for i in range(h // p1):
            for j in range(w // p2):
                assert src[k, i, j].tolist() == [ch, a + p1 * i, b + p2 * j]


def test_index_to_label():
    assert P.index_to_label(0, 2, 3, 4) == (0, 0, 0)
    assert P.index_to_label(23, 2, 3, 4) == (1, 2, 3)
    assert P.index_to_label(17, 2, 3, 4) == (1, 1, 1)
    with pytest.raises(CourseError):
        P.index_to_label(24, 2, 3, 4)


@pytest.mark.parametrize("p", [1, 2, 3, 4])
def test_equals_pixel_unshuffle(p):
    x = torch.randn(2, 3, 4 * p, 2 * p, generator=torch.Generator().manual_seed(p))
    assert P.matches_pixel_unshuffle(x, p)
    assert torch.equal(P.space_to_depth(x, p, p), nn.PixelUnshuffle(p)(x))


def test_round_trip_exact_random_shapes():
    gen = torch.Generator().manual_seed(0)
    for _ in range(50):
        p1, p2 = (int(v) for v in torch.randint(1, 5, (2,), generator=gen))
        b, c, h, w = (int(v) for v in torch.randint(1, 5, (4,), generator=gen))
        x = torch.randn(b, c, h * p1, w * p2, generator=gen)
        assert P.round_trip_exact(x, p1, p2)
        y = P.space_to_depth(x, p1, p2)
        assert y.shape == (b, c * p1 * p2, h, w)
        assert torch.equal(y.flatten().sort().values, x.flatten().sort().values)  # a permutation


def test_bad_factors_raise_course_error():
    with pytest.raises(CourseError, match="not divisible by p1=2"):
        P.space_to_depth(torch.zeros(1, 1, 5, 4), 2, 2)
    with pytest.raises(CourseError, match="positive integer"):
        P.space_to_depth(torch.zeros(1, 1, 4, 4), 0, 2)
    assert P.check_rearrange(6, 6, 3, 2) is None
    assert "width 6 is not divisible by p2=4" in P.check_rearrange(6, 6, 3, 4)


def test_maxpool_survivors():
    x = P.labelled_grid(1, 4).double()
    mask = P.maxpool_survivors(x)
    assert mask.int()[0, 0].tolist() == [[0, 0, 0, 0], [0, 1, 0, 1], [0, 0, 0, 0], [0, 1, 0, 1]]
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(3, 2, 6, 6, generator=gen)
    mask = P.maxpool_survivors(x, 2)
    assert int(mask.sum()) == 3 * 2 * 9  # one survivor per 2x2 window
    kept = torch.where(mask, x, torch.tensor(float("-inf")))
    assert torch.equal(nn.MaxPool2d(2)(kept), nn.MaxPool2d(2)(x))  # the survivors are the maxima
    assert torch.equal(x[mask].sort().values, nn.MaxPool2d(2)(x).flatten().sort().values)


def test_param_cost():
    cost = P.pooling_param_cost(64)
    assert cost == {"maxpool": 0, "rearrange": 0, "conv_weight": 9 * 256 * 64, "conv_bias": 64, "norm": 128,
                    "block": 147648}
    assert P.pooling_param_cost(128)["block"] == 590208
    # the two pooling blocks are exactly the difference between the gelu and rearrange rungs
    assert cu.count_params(cu.build("rearrange")) - cu.count_params(cu.build("gelu")) == 147648 + 590208


def test_block_not_invertible():
    d = P.block_not_invertible()
    assert (d["in_numbers"], d["rearranged_numbers"], d["out_numbers"]) == (16, 16, 4)
    assert d["conv_rank"] == 4 and d["null_space_dim"] == 12
    assert d["input_diff"] == pytest.approx(3.0)
    assert d["output_diff"] < 1e-12
    d = P.block_not_invertible(channels=2, h=8, groups=2, seed=3)
    assert (d["out_numbers"], d["conv_rank"], d["null_space_dim"]) == (32, 32, 96)
    assert d["output_diff"] < 1e-12


# --- widget --------------------------------------------------------------------------------------------

def test_explorer_data_valid():
    d = R.explorer_data(4, 1, 2, 2)
    assert d["valid"] and d["round_trip_exact"] and d["pixel_unshuffle"] is True
    assert d["out_shape"] == (4, 2, 2)
    assert d["output"][1].flatten().tolist() == [1, 3, 9, 11]
    assert d["maxpool"]["kept"] == 4 and d["maxpool"]["fraction"] == 0.25
    # in "patch position" mode every output channel has one colour
    for k in range(4):
        rgb = d["output_rgb"][k].reshape(-1, 3)
        assert (rgb == rgb[0]).all()
    d = R.explorer_data(6, 2, 3, 2, colour="pixel", maxpool_input="labelled")
    assert d["pixel_unshuffle"] is None and d["round_trip_exact"]
    assert d["out_shape"] == (12, 2, 3)
    assert d["maxpool"]["kept"] == 12
    text = R.readout_text(d)
    assert "not comparable" in text and "12 of 72" in text


def test_explorer_data_invalid_is_a_message():
    d = R.explorer_data(5, 1, 2, 2)
    assert not d["valid"] and "not divisible" in d["message"]
    assert "INVALID" in R.readout_text(d)
    fig = R.static_figure(5, 1, 2, 2)
    drawn = " ".join(fig._suptitle.get_text().split())  # wrapped over lines
    assert drawn == d["message"]  # the message is drawn in place of the output
    assert len(fig.axes) == 1  # only the input channel
    with pytest.raises(CourseError):
        R.explorer_data(13, 1, 2, 2)


def test_static_figure_and_explorer_respond():
    import matplotlib.pyplot as plt
    fig = R.static_figure(6, 2, 3, 3)
    assert len(fig.axes) > 10
    plt.close(fig)
    box = R.explorer()
    assert "course-widget" in box._dom_classes
    assert "course-readout" in box.readout._dom_classes
    seen = {box.readout.value}
    for name, value in [("size", 5), ("show_maxpool", False), ("maxpool_input", "labelled"), ("size", 6),
                        ("p1", 3), ("p2", 3), ("channels", 2), ("colour", "pixel"), ("maxpool_input", "random"),
                        ("show_maxpool", True), ("maxpool_input", "labelled"), ("size", 4), ("show_maxpool", False)]:
        box.controls[name].value = value
        assert box.readout.value not in seen, name
        seen.add(box.readout.value)
    assert "INVALID" in box.readout.value  # size 4 with p1 = p2 = 3
    plt.close("all")
