"""Activation explorer (notebook 04): GELU (exact and tanh), ReLU and SiLU side by side.

* :func:`explorer_data` and :func:`readout_text` - pure: the curves and the numbers shown.
* :func:`static_figure` - a matplotlib Figure, the fallback for non-interactive runs.
* :func:`explorer` - the ipywidgets layer: pick functions and the x range, show values and/or
  derivatives, shade where the derivative is <= 0, and time GELU against ReLU on this machine.

The maths lives in :mod:`course_utils.lessons.gelu`; this module only arranges it.
"""
from __future__ import annotations

import html

from course_utils.errors import CourseError
from course_utils.lessons import gelu as A
from course_utils.system import pick_device

COLORS = {"gelu": "tab:blue", "gelu_tanh": "tab:cyan", "relu": "tab:red", "silu": "tab:green"}
VIEWS = ("values and derivatives", "values", "derivatives")


def explorer_data(names=("gelu", "relu"), lo: float = -4.0, hi: float = 3.0, n: int = 561) -> dict:
    """{"x", "curves": {name: {"y", "dy"}}, "summaries": {name: activations.summary(...)}} on [lo, hi]."""
    names = tuple(names)
    for name in names:
        A._check(name)
    c = A.curves(names, lo, hi, n)
    return {"x": c["x"], "lo": lo, "hi": hi, "names": names,
            "curves": {k: c[k] for k in names},
            "summaries": {k: A.summary(k, lo, hi, n) for k in names}}


def _fmt_intervals(iv) -> str:
    if not iv:
        return "nowhere in this range"
    return ", ".join(f"[{a + 0.0:.4f}, {b + 0.0:.4f}]" for a, b in iv)


def readout_text(data: dict, timing: dict | None = None, view: str = VIEWS[0], highlight: bool = True) -> str:
    """Plain-text lines summarising ``explorer_data``'s numbers (and a timing, if measured)."""
    lines = [f"x from {data['lo']:.2f} to {data['hi']:.2f}; showing {view}; "
             f"f' <= 0 {'marked' if highlight else 'not marked'}"]
    if not data["names"]:
        lines.append("no function selected: tick at least one box")
    for name in data["names"]:
        s = data["summaries"][name]
        lines.append(f"{A.LABELS[name]}: min f = {s['min_y']:.4f} at x = {s['argmin_y']:.2f}; "
                     f"min f' = {s['min_dy']:.4f} at x = {s['argmin_dy']:.2f}; "
                     f"f' <= 0 on {_fmt_intervals(s['nonpositive'])}")
    if timing:
        lines.append(f"forward+backward on {timing['n']:,} values ({timing['device']}, median of {timing['repeats']}): "
                     f"GELU {timing['gelu_ms']:.3f} ms, ReLU {timing['relu_ms']:.3f} ms, "
                     f"ratio GELU/ReLU = {timing['ratio']:.2f}")
    return "\n".join(lines)


def _draw(fig, data: dict, view: str = VIEWS[0], highlight: bool = True):
    if view not in VIEWS:
        raise CourseError(f"view={view!r}; choose one of {VIEWS}.")
    panels = [v for v in ("values", "derivatives") if view == VIEWS[0] or view == v]
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    x = data["x"].numpy()
    for ax, panel in zip(axes, panels):
        key = "y" if panel == "values" else "dy"
        for i, name in enumerate(data["names"]):
            ax.plot(x, data["curves"][name][key].numpy(), color=COLORS[name], label=A.LABELS[name],
                    lw=1.8, ls="--" if name == "gelu_tanh" else "-")
            s = data["summaries"][name]
            if panel == "values" and s["min_y"] < 0:
                ax.plot([s["argmin_y"]], [s["min_y"]], "o", color=COLORS[name], ms=4)
            if highlight:  # a bar along the bottom where the derivative is <= 0
                for a, b in s["nonpositive"]:
                    ax.plot([a, b], [0.03 + 0.035 * i] * 2, color=COLORS[name], lw=4, alpha=0.7,
                            solid_capstyle="butt", transform=ax.get_xaxis_transform())
        if highlight and data["names"]:  # make room below the curves for the bars
            bottom, top = ax.get_ylim()
            dmin = min(float(data["curves"][k][key].min()) for k in data["names"])
            h = 0.05 + 0.035 * len(data["names"])
            ax.set_ylim(min(bottom, (dmin - h * top) / (1 - h)), top)
        ax.axhline(0, color="gray", lw=0.6)
        ax.axvline(0, color="gray", lw=0.6)
        ax.set_xlim(data["lo"], data["hi"])
        ax.set_xlabel("x")
        ax.set_title("f(x)" if panel == "values" else "f'(x) (autograd)", fontsize=10)
        if data["names"]:
            ax.legend(fontsize=8, loc="upper left")
    if highlight and data["names"]:
        fig.suptitle("bars along the bottom: where the derivative is <= 0 (no gradient, or a backwards one); "
                     "dots: the minimum", fontsize=9)
    return fig


def static_figure(names=("gelu", "gelu_tanh", "relu", "silu"), lo: float = -4.0, hi: float = 3.0,
                  view: str = VIEWS[0], highlight: bool = True):
    """The explorer's picture as a plain matplotlib Figure."""
    import matplotlib.pyplot as plt

    data = explorer_data(names, lo, hi)
    ncols = 2 if view == VIEWS[0] else 1
    fig = plt.figure(figsize=(5.2 * ncols, 3.8), layout="constrained")
    return _draw(fig, data, view, highlight)


def explorer(names=("gelu", "relu"), lo: float = -4.0, hi: float = 3.0, timing_n: int = 1 << 18,
             timing_repeats: int = 10):
    """The interactive activation explorer (an ``ipywidgets.VBox`` with class ``course-widget``).

    The box has ``.controls`` (a dict of the widgets), ``.readout`` and ``.output`` attributes so
    tests can drive it from Python.
    """
    import ipywidgets as W
    import matplotlib.pyplot as plt
    from IPython.display import display


    x_min = W.FloatSlider(value=lo, min=-8.0, max=-0.25, step=0.25, description="x min", continuous_update=False)
    x_max = W.FloatSlider(value=hi, min=0.25, max=8.0, step=0.25, description="x max", continuous_update=False)
    boxes = {k: W.Checkbox(value=k in names, description=A.LABELS[k], indent=False,
                           layout=W.Layout(width="auto")) for k in A.FUNCTIONS}
    view = W.ToggleButtons(options=VIEWS, value=VIEWS[0], description="show",
                           style={"button_width": "170px"})
    highlight = W.Checkbox(value=True, description="mark where f' <= 0", indent=False)
    measure = W.Button(description="measure GELU/ReLU time", icon="clock-o", layout=W.Layout(width="240px"),
                       tooltip="forward+backward on a random tensor, median of repeats, on this machine")
    readout = W.HTML().add_class("course-readout")
    out = W.Output()
    state: dict = {"timing": None}

    def current():
        chosen = tuple(k for k, b in boxes.items() if b.value)
        return explorer_data(chosen, x_min.value, x_max.value)

    def render(data):
        readout.value = "<pre style='margin:0'>" + html.escape(
            readout_text(data, state["timing"], view.value, highlight.value)) + "</pre>"

    def update(_=None):
        data = current()
        render(data)
        ncols = 2 if view.value == VIEWS[0] else 1
        fig = plt.figure(figsize=(5.2 * ncols, 3.8), layout="constrained")
        _draw(fig, data, view.value, highlight.value)
        with out:
            out.clear_output(wait=True)
            display(fig)
        plt.close(fig)

    def on_measure(_=None):
        measure.disabled = True
        measure.description = "measuring..."
        try:
            state["timing"] = A.time_ratio(n=timing_n, repeats=timing_repeats, device=pick_device())
        finally:
            measure.disabled = False
            measure.description = "measure GELU/ReLU time"
        render(current())

    for w in (x_min, x_max, view, highlight, *boxes.values()):
        w.observe(update, names="value")
    measure.on_click(on_measure)

    box = W.VBox([
        W.HBox([x_min, x_max]),
        W.HBox(list(boxes.values())),
        W.HBox([view, highlight]),
        measure, readout, out,
    ]).add_class("course-widget")
    box.controls = {"x_min": x_min, "x_max": x_max, "view": view, "highlight": highlight, "measure": measure,
                    **{f"show_{k}": b for k, b in boxes.items()}}
    box.readout, box.output, box.measure_now = readout, out, on_measure
    update()
    return box
