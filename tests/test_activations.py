"""course_utils.lessons.gelu and the activation explorer widget: exact numbers and a working widget."""
import math

import pytest
import torch

import course_utils as cu
from course_utils.lessons import gelu as A
from course_utils.widgets import gelu as WA


def test_gelu_values_and_derivative_at_known_points():
    x = torch.tensor([0.0, 1.0, -1.0], dtype=torch.float64)
    y, dy = A.values_and_grads("gelu", x)
    assert y[0] == 0 and dy[0] == pytest.approx(0.5, abs=1e-12)
    assert y[1] == pytest.approx(A.phi(1.0), abs=1e-12)          # GELU(x) = x * Phi(x)
    assert y[2] == pytest.approx(-A.phi(-1.0), abs=1e-12)
    # GELU'(x) = Phi(x) + x * phi(x)
    pdf = math.exp(-0.5) / math.sqrt(2 * math.pi)
    assert dy[1] == pytest.approx(A.phi(1.0) + pdf, abs=1e-12)


def test_gelu_gradient_zero_and_minimum():
    x0 = A.grad_zero("gelu")
    assert x0 == pytest.approx(-0.7518, abs=1e-3)
    x, ymin = A.minimum("gelu")
    assert x == x0 and ymin == pytest.approx(-0.1700, abs=1e-4)
    # negative just left of the zero, positive just right of it
    _, d = A.values_and_grads("gelu", torch.tensor([x0 - 0.01, x0 + 0.01], dtype=torch.float64))
    assert d[0] < 0 < d[1]


def test_other_minima():
    assert A.minimum("silu")[0] == pytest.approx(-1.2785, abs=1e-4)
    assert A.minimum("silu")[1] == pytest.approx(-0.2785, abs=1e-4)
    assert A.minimum("gelu_tanh")[0] == pytest.approx(-0.7525, abs=1e-4)
    with pytest.raises(cu.CourseError, match="does not change sign"):
        A.grad_zero("relu")


def test_tanh_approximation_error_is_small():
    err, where = A.tanh_approx_error(-5, 5)
    assert 4e-4 < err < 1e-3
    assert abs(where) == pytest.approx(2.70, abs=0.05)


def test_relu_gradient_zero_on_negative_half():
    _, d = A.values_and_grads("relu", torch.tensor([-2.0, -1e-6, 0.0, 1e-6, 3.0]))
    assert d.tolist() == [0.0, 0.0, 0.0, 1.0, 1.0]


def test_summary_intervals_are_located_exactly():
    assert A.summary("gelu", -4, 3)["nonpositive"] == [(-4.0, pytest.approx(-0.751792, abs=1e-6))]
    assert A.summary("relu", -4, 3)["nonpositive"] == [(-4.0, pytest.approx(0.0, abs=1e-6))]
    assert A.summary("silu", -4, 3)["nonpositive"] == [(-4.0, pytest.approx(-1.278465, abs=1e-6))]
    assert A.summary("gelu", -0.5, 3)["nonpositive"] == []
    s = A.summary("gelu", -4, 3, n=701)
    assert s["min_dy"] == pytest.approx(-0.1289, abs=1e-4) and s["argmin_dy"] == pytest.approx(-math.sqrt(2), abs=0.01)


def test_nonpositive_intervals():
    x = torch.arange(6.0)
    assert A.nonpositive_intervals(x, torch.tensor([-1.0, 0, 1, 1, -1, -1])) == [(0.0, 1.0), (4.0, 5.0)]
    assert A.nonpositive_intervals(x, torch.ones(6)) == []


def test_bad_arguments_raise_course_error():
    with pytest.raises(cu.CourseError, match="unknown activation"):
        A.values_and_grads("swish", torch.zeros(1))
    with pytest.raises(cu.CourseError, match="lo < hi"):
        A.curves(("gelu",), 1.0, 0.0)
    with pytest.raises(cu.CourseError):
        A.time_ratio(n=10, repeats=0)


def test_time_ratio_returns_positive_numbers():
    t = A.time_ratio(n=1024, repeats=3)
    assert t["gelu_ms"] > 0 and t["relu_ms"] > 0 and t["ratio"] == pytest.approx(t["gelu_ms"] / t["relu_ms"])


def test_time_ratio_is_a_median_over_repeats(monkeypatch):
    """Each time is the median of the repeats, so one slow repeat (a busy machine) cannot move the ratio."""
    from types import SimpleNamespace
    durations = iter([0.001, 0.100, 0.002,   # gelu: one 100 ms hiccup among 1 and 2 ms
                      0.001, 0.001, 0.050])  # relu: one 50 ms hiccup
    clock = {"now": 0.0, "started": False}

    def perf_counter():  # time_ratio reads the clock before and after each repeat
        if clock["started"]:
            clock["now"] += next(durations)
        clock["started"] = not clock["started"]
        return clock["now"]

    monkeypatch.setattr(A, "time", SimpleNamespace(perf_counter=perf_counter))
    t = A.time_ratio(n=64, repeats=3)
    assert next(durations, None) is None  # every repeat was timed
    assert t["gelu_ms"] == pytest.approx(2.0) and t["relu_ms"] == pytest.approx(1.0)
    assert t["ratio"] == pytest.approx(2.0) and t["repeats"] == 3


def test_static_figure():
    import matplotlib.pyplot as plt
    fig = WA.static_figure()
    assert len(fig.axes) == 2
    plt.close(fig)
    fig = WA.static_figure(("relu",), view="values")
    assert len(fig.axes) == 1
    plt.close(fig)
    with pytest.raises(cu.CourseError):
        WA.static_figure(view="sideways")


def test_readout_text_numbers():
    text = WA.readout_text(WA.explorer_data(("gelu", "relu"), -4, 3))
    assert "x from -4.00 to 3.00; showing values and derivatives" in text
    assert "GELU (exact): min f = -0.1700" in text and "[-4.0000, -0.7518]" in text
    assert "ReLU" in text and "[-4.0000, 0.0000]" in text


def test_explorer_responds_to_every_control():
    import ipywidgets as W
    box = WA.explorer()
    assert isinstance(box, W.VBox) and "course-widget" in box._dom_classes
    assert "course-readout" in box.readout._dom_classes
    seen = {box.readout.value}
    c = box.controls
    for name, value in [("x_min", -3.75), ("x_max", 2.5), ("show_silu", True), ("show_gelu", False),
                        ("view", WA.VIEWS[2]), ("highlight", False), ("show_relu", False), ("show_silu", False)]:
        c[name].value = value
        assert box.readout.value not in seen, name
        seen.add(box.readout.value)
    assert "no function selected" in box.readout.value
    c["show_gelu"].value = True
    assert "-0.7518" in box.readout.value
    c["measure"].click()
    assert "ratio GELU/ReLU" in box.readout.value
