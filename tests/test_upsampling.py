"""Overlap counts of upsamplers (course_utils.lessons.checkerboard) and the checkerboard explorer widget."""
import math

import numpy as np
import pytest
import torch

from course_utils import CourseError
from course_utils.lessons import checkerboard as up
from course_utils.evaluation.metrics import checker_pattern
from course_utils.widgets import checkerboard as cb

BASELINE_4x4 = np.array([
    [1, 2, 1, 2, 1, 2, 1, 1],
    [2, 4, 2, 4, 2, 4, 2, 2],
    [1, 2, 1, 2, 1, 2, 1, 1],
    [2, 4, 2, 4, 2, 4, 2, 2],
    [1, 2, 1, 2, 1, 2, 1, 1],
    [2, 4, 2, 4, 2, 4, 2, 2],
    [1, 2, 1, 2, 1, 2, 1, 1],
    [1, 2, 1, 2, 1, 2, 1, 1],
])


# --- exact maps ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["count", "torch"])
def test_baseline_convT3_on_constant_4x4(method):
    m = up.overlap_map(4, 3, 2, 1, 1, method=method)
    np.testing.assert_array_equal(m, BASELINE_4x4)
    np.testing.assert_array_equal(up.overlap_profile(4, 3, 2, 1, 1), [1, 2, 1, 2, 1, 2, 1, 1])


def test_baseline_interior_is_1_2_4():
    mask = up.interior_mask(4, 3, 2, 1, 1)
    # the last row and column (added by output_padding) see only one input row/column
    assert mask[:7, :7].all() and not mask[7].any() and not mask[:, 7].any()
    assert sorted(set(BASELINE_4x4[mask].tolist())) == [1, 2, 4]
    assert up.unevenness(BASELINE_4x4, mask) == 4.0
    assert up.interior_counts(3, 2) == [1, 2, 4]
    assert up.transposed_unevenness(3, 2) == 4.0


@pytest.mark.parametrize("method", ["count", "torch"])
def test_k2_s2_is_all_ones(method):
    m = up.overlap_map(4, 2, 2, method=method)
    assert m.shape == (8, 8)
    assert (m == 1).all()
    assert up.transposed_unevenness(2, 2) == 1.0


def test_k4_s2_even_inside_uneven_at_border():
    m = up.overlap_map(4, 4, 2, 1)
    np.testing.assert_array_equal(up.overlap_profile(4, 4, 2, 1), [1, 2, 2, 2, 2, 2, 2, 1])
    assert (m[1:-1, 1:-1] == 4).all() and m[0, 0] == 1
    assert up.unevenness(m, up.interior_mask(4, 4, 2, 1)) == 1.0
    assert up.interior_counts(4, 2) == [4]


def test_unevenness_special_cases():
    assert up.transposed_unevenness(1, 2) == math.inf          # k < s: gaps, some pixels get nothing
    assert up.interior_counts(1, 2) == [0, 1]
    assert up.transposed_unevenness(5, 2) == 2.25              # counts 4, 6, 9
    assert up.transposed_unevenness(3, 2, layers=2) == 9.0     # stacking makes it worse
    assert up.transposed_unevenness(3, 2, layers=3) == 25.0
    assert up.transposed_unevenness(4, 2, layers=3) == 1.0
    assert math.isnan(up.unevenness([[1, 2]], [[False, False]]))


@pytest.mark.parametrize("method", ["count", "torch"])
def test_resize_conv_uniform_inside(method):
    m = up.resize_conv_map(4, 2, 3, method=method)
    assert m.shape == (8, 8)
    assert (m[1:-1, 1:-1] == 9).all()
    assert m[0, 0] == 4 and m[0, 3] == 6
    assert up.resize_conv_unevenness(2, 3) == 1.0
    for s, k, L in [(2, 3, 3), (3, 4, 2), (4, 2, 1)]:
        assert up.resize_conv_interior_counts(s, k, L) == [k ** (2 * L)]


# --- the two methods agree -----------------------------------------------------------------------------

GRID = [(k, s, p, op, L)
        for k in range(1, 6) for s in range(1, 4) for p in range(0, 3) for op in range(0, s) for L in (1, 2)
        if up.output_size(up.output_size(5, k, s, p, op), k, s, p, op) > 0 and up.output_size(5, k, s, p, op) > 0]


def test_methods_agree_on_a_grid():
    assert len(GRID) > 150
    for k, s, p, op, L in GRID:
        a = up.overlap_map(5, k, s, p, op, L, method="count")
        b = up.overlap_map(5, k, s, p, op, L, method="torch")
        assert a.shape == b.shape and (a == b).all(), (k, s, p, op, L)


@pytest.mark.parametrize("scale,kernel,layers", [(1, 3, 1), (2, 3, 2), (2, 1, 1), (3, 5, 1), (2, 4, 1)])
def test_resize_methods_agree(scale, kernel, layers):
    np.testing.assert_array_equal(up.resize_conv_map(5, scale, kernel, None, layers, "count"),
                                  up.resize_conv_map(5, scale, kernel, None, layers, "torch"))


# --- the course's upsamplers ---------------------------------------------------------------------------

@pytest.mark.parametrize("kind,uneven", [("convT3", 4.0), ("convT2", 1.0), ("resize", 1.0)])
def test_make_upsampler_response_matches_counts(kind, uneven):
    np.testing.assert_array_equal(up.upsampler_response(kind, 4, "ones"), up.upsampler_counts(kind, 4))
    assert up.upsampler_unevenness(kind) == uneven


def test_upsampler_spread():
    assert up.upsampler_spread("convT3", "ones") == 3.0
    assert up.upsampler_spread("convT2", "ones") == 0.0
    # with random weights a k2/s2 transposed convolution is *not* flat; resize-then-conv always is
    assert up.upsampler_spread("convT2", "init", seed=0) > 0.1
    assert up.upsampler_spread("resize", "init", seed=0) < 1e-12
    np.testing.assert_array_equal(up.upsampler_response("convT3", 4), BASELINE_4x4)


def test_same_size_output_padding():
    assert up.same_size_output_padding(3, 2, 1) == 1
    assert up.same_size_output_padding(2, 2, 0) == 0
    assert up.same_size_output_padding(4, 2, 1) == 0
    assert up.same_size_output_padding(5, 2, 0) is None


def test_bad_arguments_raise_course_errors():
    with pytest.raises(CourseError, match="output_padding=2 must be smaller than the stride"):
        up.overlap_map(4, 3, 2, 0, 2)
    with pytest.raises(CourseError, match="no output pixels"):
        up.overlap_map(4, 5, 1, 4)
    with pytest.raises(CourseError, match="kernel must be an integer"):
        up.overlap_profile(4, 0, 2)
    with pytest.raises(CourseError, match="unknown method"):
        up.overlap_map(4, 3, 2, method="fft")
    with pytest.raises(CourseError, match="unknown upsampler"):
        up.upsampler_response("bilinear")
    with pytest.raises(CourseError, match="weights="):
        up.upsampler_response("convT3", weights="zeros")


def test_format_map():
    assert up.format_map([[1, 2], [10, 4]]) == " 1  2\n10  4"


# --- widget compute functions --------------------------------------------------------------------------

def test_overlap_data_baseline():
    d = cb.overlap_data(3, 2, 1, 1, n=4)
    assert d["ok"] and d["output_padding"] == 1
    np.testing.assert_array_equal(d["counts"], BASELINE_4x4)
    assert d["interior_values"] == [1, 2, 4] and d["unevenness"] == 4.0 and not d["divisible"]
    assert d["resize_unevenness"] == 1.0 and d["resize_counts"][3, 3] == 9
    text = cb.overlap_readout(d)
    assert "ConvTranspose2d(k=3, s=2, p=1, output_padding=1)" in text
    assert "{1, 2, 4}" in text and "4.00" in text and "4x4 input -> 8x8" in text


def test_overlap_data_invalid_does_not_raise():
    d = cb.overlap_data(2, 1, 3, 1, n=4)
    assert not d["ok"] and "no output pixels" in d["error"]
    assert "invalid" in cb.overlap_readout(d)


def test_overlap_readout_gaps():
    d = cb.overlap_data(1, 2, 0, 1, n=4)
    assert d["interior_values"] == [0, 1]
    assert "inf (gaps)" in cb.overlap_readout(d)


def test_choice_for():
    assert cb.choice_for(3, 2, 1).startswith("baseline")
    assert cb.choice_for(2, 2, 0).startswith("upsample rung")
    assert cb.choice_for(5, 3, 0).startswith("custom")


def test_samples_data_exact():
    checker = checker_pattern(16, 16)[None, None].repeat(3, 1, 1, 1)
    flat = torch.zeros(2, 1, 16, 16)
    d = cb.samples_data({"checker": checker, "flat": flat, "real": 0.5 * checker})
    assert d["checker"]["score"] == 1.0 and d["flat"]["score"] == 0.0 and d["real"]["score"] == 0.5
    assert d["checker"]["ratio"] == 2.0 and d["checker"]["n"] == 3
    assert d["checker"]["spectrum"].shape == (16, 16)
    # the whole (mean-removed) power of a pure checkerboard sits at the Nyquist bin, index 0 after fftshift
    spec = d["checker"]["spectrum"]
    assert spec[0, 0] == spec.max()
    assert cb.samples_data({"checker": checker}, n_images=1)["checker"]["n"] == 1
    text = cb.samples_readout(d)
    assert "checker: 1.0000 (2.00x real) over 3 images" in text
    assert "flat: 0.0000 (0.00x real) over 2 images" in text


def test_samples_data_bad_input():
    with pytest.raises(CourseError, match="non-empty dict"):
        cb.samples_data([])
    with pytest.raises(CourseError, match="shape"):
        cb.samples_data({"x": torch.zeros(16)})
    with pytest.raises(CourseError, match="n_images"):
        cb.samples_data({"x": torch.zeros(2, 1, 4, 4)}, n_images=0)


# --- figures and widgets -------------------------------------------------------------------------------

def test_static_figures():
    import matplotlib.pyplot as plt
    fig = cb.static_figure()
    assert len(fig.axes) >= 3
    plt.close(fig)
    fig = cb.static_figure(1, 1, 3)  # invalid (k1 s1 p3 crops a 6x6 input to nothing): a message, no exception
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert any(t.startswith("invalid layer:") and "no output pixels" in t for t in texts), texts
    plt.close(fig)
    s = {"a": torch.zeros(4, 1, 16, 16), "real": torch.rand(5, 1, 16, 16)}
    fig = cb.static_figure(samples=s)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0].startswith("1x ConvTranspose2d k3 s2 p1 op1") and "unevenness 4.00" in titles[0]
    assert "a (first 4 of 4)\nscore 0.0000" in titles and sum("power spectrum" in t for t in titles) == 2
    plt.close(fig)
    fig = cb.samples_figure(s, view="mean image")
    assert [ax.get_title() for ax in fig.axes][2:] == ["mean image", "mean image"]
    plt.close(fig)


def test_explorer_responds_to_every_control():
    box = cb.explorer()
    assert "course-widget" in box._dom_classes
    assert "course-readout" in box.readout._dom_classes
    seen = [box.readout.value]
    for name, value in [("kernel", 4), ("stride", 3), ("padding", 2), ("layers", 2), ("kernel", 2), ("padding", 3)]:
        box.controls[name].value = value
        assert box.readout.value not in seen, name
        seen.append(box.readout.value)
    assert "invalid" not in seen[-2]
    box.controls["upsampler"].value = cb.choice_for(2, 2, 0)
    assert [box.controls[n].value for n in ("kernel", "stride", "padding")] == [2, 2, 0]
    assert "k=2, s=2, p=0" in box.readout.value and box.readout.value not in seen
    box.controls["kernel"].value = 3
    assert box.controls["upsampler"].value.startswith("custom")


def test_samples_explorer_responds():
    s = {"a": checker_pattern(16, 16)[None, None].repeat(4, 1, 1, 1), "real": torch.rand(6, 1, 16, 16)}
    box = cb.samples_explorer(s)
    assert "course-widget" in box._dom_classes and "course-readout" in box.readout._dom_classes
    assert box.controls["images"].value == 4  # the smallest set: every set is scored on the same count
    seen = [box.readout.value]
    box.controls["add_checker"].value = 0.01  # what ArrowRight on the first slider does
    assert box.readout.value not in seen and "0.01 checkerboard added" in box.readout.value
    seen.append(box.readout.value)
    box.controls["images"].value = 2
    assert box.readout.value not in seen and "over 2 images" in box.readout.value
    seen.append(box.readout.value)
    box.controls["view"].value = "mean image"
    assert box.readout.value not in seen and "mean image" in box.readout.value
    both = cb.explorer(samples=s)
    assert set(both.controls) == {"kernel", "stride", "padding", "layers", "upsampler", "add_checker", "images",
                                  "view"}


def test_add_checkerboard_shifts_the_score():
    flat = torch.zeros(3, 1, 16, 16)
    d = cb.samples_data({"flat": flat}, add_checker=0.25)
    assert d["flat"]["score"] == 0.25
    assert torch.equal(cb.add_checkerboard(flat, 0.0), flat)
