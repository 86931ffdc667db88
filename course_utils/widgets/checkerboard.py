"""Checkerboard explorer: how unevenly a transposed convolution covers its output, and what it does to samples.

Three layers, as for every widget of the course:

* compute functions (:func:`overlap_data`, :func:`overlap_readout`, :func:`samples_data`,
  :func:`samples_readout`) return plain numbers and arrays and are unit-tested;
* :func:`static_figure` draws the same pictures with matplotlib, for non-interactive runs;
* :func:`explorer` and :func:`samples_explorer` are thin ipywidgets layers on top.

The overlap panel feeds a constant input to a stack of ConvTranspose2d layers with unit weights
and shows how many kernel stamps land on each output pixel, beside nearest-neighbour
resize-then-convolve with the same kernel size. The samples panel shows generated images, their
mean 2-D power spectrum (the checkerboard lives in the Nyquist corner) and their checkerboard score
beside real images'.
"""
from __future__ import annotations

import html

import numpy as np
import torch

from course_utils.errors import CourseError
from course_utils.evaluation.metrics import checker_pattern, checkerboard_score, mean_spectrum, nyquist_amplitude
from course_utils.lessons import checkerboard as up
from course_utils.plotting import to_grid

# Upsampler choices of the explorer's drop-down: label -> (kernel, stride, padding) or None (custom).
CHOICES: dict[str, tuple[int, int, int] | None] = {
    "baseline: ConvTranspose2d k3 s2 p1 (convT3)": (3, 2, 1),
    "upsample rung: ConvTranspose2d k2 s2 (convT2)": (2, 2, 0),
    "ConvTranspose2d k4 s2 p1": (4, 2, 1),
    "custom (use the sliders)": None,
}
LIMITS = dict(kernel=(1, 7), stride=(1, 4), padding=(0, 3), layers=(1, 3))
DEFAULT_N = 6


def _fmt_ratio(r: float) -> str:
    if np.isnan(r):
        return "n/a"
    return "inf (gaps)" if np.isinf(r) else f"{r:.2f}"


def choice_for(kernel: int, stride: int, padding: int) -> str:
    """The drop-down label that matches these slider values (the custom label if none does)."""
    for label, params in CHOICES.items():
        if params == (kernel, stride, padding):
            return label
    return "custom (use the sliders)"


# --- overlap panel: compute ----------------------------------------------------------------------------

def overlap_data(kernel: int = 3, stride: int = 2, padding: int = 1, layers: int = 1, n: int = DEFAULT_N,
                 output_padding: int | None = None) -> dict:
    """Everything the overlap panel shows, for ``layers`` stacked ConvTranspose2d(kernel, stride, padding).

    ``output_padding=None`` picks the value that makes each layer's output exactly ``stride`` times
    its input when one exists (1 for k3 s2 p1), else 0. The comparison is ``layers`` x (nearest
    resize by ``stride``, then a kernel x kernel convolution with padding (kernel - 1) // 2).
    Invalid combinations do not raise: ``ok`` is False and ``error`` says why.
    """
    op = output_padding
    if op is None:
        op = up.same_size_output_padding(kernel, stride, padding)
        op = 0 if op is None else op
    d = dict(kernel=kernel, stride=stride, padding=padding, layers=layers, n=n, output_padding=op,
             ok=True, error="")
    try:
        up.check_transposed(n, kernel, stride, padding, op, layers)
        resize = up.resize_conv_map(n, stride, kernel, None, layers)  # can be impossible too (tiny inputs)
        rmask = up.resize_conv_interior_mask(n, stride, kernel, None, layers)
    except CourseError as e:
        d.update(ok=False, error=str(e))
        return d
    counts = up.overlap_map(n, kernel, stride, padding, op, layers)
    mask = up.interior_mask(n, kernel, stride, padding, op, layers)
    d.update(
        counts=counts, interior=mask,
        profile=up.overlap_profile(n, kernel, stride, padding, op, layers),
        interior_values=up.interior_counts(kernel, stride, layers),
        unevenness=up.transposed_unevenness(kernel, stride, layers),
        divisible=kernel % stride == 0,
        resize_counts=resize, resize_interior=rmask,
        resize_profile=up.resize_conv_profile(n, stride, kernel, None, layers),
        resize_unevenness=up.resize_conv_unevenness(stride, kernel, layers),
    )
    return d


def overlap_readout(d: dict) -> str:
    """One line of text summarising :func:`overlap_data` (the explorer's readout)."""
    k, s, p, L, op, n = (d[x] for x in ("kernel", "stride", "padding", "layers", "output_padding", "n"))
    layer = f"{L} x ConvTranspose2d(k={k}, s={s}, p={p}, output_padding={op})"
    if not d["ok"]:
        return f"{layer}: invalid. {d['error']}"
    vals = d["interior_values"]
    shown = ", ".join(map(str, vals[:8])) + (", ..." if len(vals) > 8 else "")
    why = (f"k={k} is divisible by s={s}: even" if d["divisible"] else f"k={k} is not divisible by s={s}: uneven")
    h, w = d["counts"].shape
    return (f"{layer} on a constant {n}x{n} input -> {h}x{w}. Interior overlap counts {{{shown}}}, "
            f"unevenness max/min = {_fmt_ratio(d['unevenness'])} ({why}). "
            f"Resize x{s} + conv {k}x{k}: unevenness {_fmt_ratio(d['resize_unevenness'])}.")


# --- overlap panel: figure -----------------------------------------------------------------------------

def _heat(ax, counts, mask, title):
    im = ax.imshow(counts, cmap="magma", interpolation="nearest", vmin=0)
    if counts.shape[0] <= 16:
        hi = counts.max() if counts.size else 0
        for (i, j), v in np.ndenumerate(counts):
            ax.text(j, i, str(int(v)), ha="center", va="center", fontsize=7,
                    color="black" if v > 0.6 * hi else "white")
    if mask is not None and mask.any() and not mask.all():
        ax.contour(mask.astype(float), levels=[0.5], colors="cyan", linewidths=1)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04)


def _norm_profile(profile, mask_row):
    inside = profile[mask_row] if mask_row.any() else profile
    mean = inside.mean() if inside.size and inside.mean() > 0 else 1.0
    return profile / mean


def draw_overlap(d: dict, axes) -> None:
    """Draw the overlap panel of ``d`` on three matplotlib axes."""
    for ax in axes:
        ax.clear()
    if not d["ok"]:
        for ax in axes:
            ax.axis("off")
        axes[1].text(0.5, 0.5, "invalid layer:\n" + d["error"][:160], ha="center", va="center", wrap=True,
                     fontsize=9, transform=axes[1].transAxes)
        return
    k, s, p, L, op = (d[x] for x in ("kernel", "stride", "padding", "layers", "output_padding"))
    _heat(axes[0], d["counts"], d["interior"],
          f"{L}x ConvTranspose2d k{k} s{s} p{p} op{op}\ninterior unevenness {_fmt_ratio(d['unevenness'])}")
    _heat(axes[1], d["resize_counts"], d["resize_interior"],
          f"{L}x (resize x{s}, conv {k}x{k})\ninterior unevenness {_fmt_ratio(d['resize_unevenness'])}")
    ax = axes[2]
    m = d["interior"][len(d["profile"]) // 2] if d["interior"].any() else np.ones(len(d["profile"]), bool)
    rm = d["resize_interior"][len(d["resize_profile"]) // 2]
    ax.plot(_norm_profile(d["profile"], m), "o-", drawstyle="steps-mid", label="ConvTranspose2d", color="C3")
    ax.plot(_norm_profile(d["resize_profile"], rm), "s--", drawstyle="steps-mid", label="resize + conv",
            color="C0", markersize=4)
    ax.axhline(1.0, color="gray", lw=0.6)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("output position (1-D profile)")
    ax.set_ylabel("count / interior mean")
    ax.set_title("1-D profile (a 2-D count is row x column)", fontsize=9)
    ax.legend(fontsize=8, loc="lower center")
    ax.grid(alpha=0.3)


# --- samples panel: compute ----------------------------------------------------------------------------

def _check_samples(samples) -> dict[str, torch.Tensor]:
    if not isinstance(samples, dict) or not samples:
        raise CourseError("samples must be a non-empty dict of name -> image tensor (N, 1, H, W), e.g. "
                          "{'baseline': res['baseline']['samples'], 'real': real_images}.")
    out = {}
    for name, x in samples.items():
        x = torch.as_tensor(x).detach().float().cpu()
        if x.ndim == 3:
            x = x[:, None]
        if x.ndim != 4 or x.shape[0] < 1:
            raise CourseError(f"samples[{name!r}] must be images of shape (N, 1, H, W) with N >= 1, "
                              f"got shape {tuple(x.shape)}.")
        out[str(name)] = x
    return out


def add_checkerboard(x: torch.Tensor, amplitude: float) -> torch.Tensor:
    """x + amplitude * (-1)^(i+j): a synthetic checkerboard of known strength, to calibrate the eye and the score."""
    if not amplitude:
        return x
    pat = checker_pattern(x.shape[-2], x.shape[-1]).to(x)
    return x + float(amplitude) * pat


def samples_data(samples: dict, n_images: int | None = None, reference: str = "real",
                 add_checker: float = 0.0) -> dict:
    """Per set of images: checkerboard score, its ratio to ``reference``'s, and the mean spectrum.

    Only the first ``n_images`` of each set are used (all if None). ``add_checker`` adds a
    checkerboard of that amplitude to every image (also to ``reference``) before measuring. Returns
    {name: {"n", "score", "ratio", "spectrum", "amplitudes", "mean_image", "images"}}.
    """
    sets = _check_samples(samples)
    if n_images is not None and (not isinstance(n_images, (int, np.integer)) or n_images < 1):
        raise CourseError(f"n_images must be a positive integer or None, got {n_images!r}.")
    out = {}
    for name, x in sets.items():
        x = add_checkerboard(x[:n_images] if n_images else x, add_checker)
        out[name] = dict(n=int(x.shape[0]), score=checkerboard_score(x), spectrum=mean_spectrum(x).numpy(),
                         amplitudes=nyquist_amplitude(x).numpy(), mean_image=x.mean(dim=(0, 1)).numpy(),
                         images=x)
    ref = out.get(reference, {}).get("score")
    for r in out.values():
        r["ratio"] = (r["score"] / ref) if ref else float("nan")
    return out


def samples_readout(d: dict, view: str = "mean 2-D spectrum", add_checker: float = 0.0) -> str:
    parts = []
    for name, r in d.items():
        ratio = "" if np.isnan(r["ratio"]) else f" ({r['ratio']:.2f}x real)"
        parts.append(f"{name}: {r['score']:.4f}{ratio} over {r['n']} images")
    added = f" with a {add_checker:.2f} checkerboard added to every image" if add_checker else ""
    return "Checkerboard score" + added + ": " + "; ".join(parts) + f". Bottom row: {view}."


VIEWS = ("mean 2-D spectrum", "mean image")


def draw_samples(d: dict, axes, view: str = VIEWS[0]) -> None:
    """Samples (top row) and their mean spectrum or mean image (bottom row), one column per set of
    :func:`samples_data`'s result ``d``."""
    from matplotlib.patches import Rectangle


    for ax in np.ravel(axes):
        ax.clear()
    specs = {}
    for name, r in d.items():  # one colour scale for every spectrum; the zero-frequency bin (mean removed) is blank
        spec = np.array(r["spectrum"], dtype=float)
        spec[spec.shape[0] // 2, spec.shape[1] // 2] = np.nan
        specs[name] = spec
    lo = min(np.nanmin(v) for v in specs.values())
    hi = max(np.nanmax(v) for v in specs.values())
    for col, (name, r) in enumerate(d.items()):
        x = r["images"]
        ax = axes[0][col]
        ax.imshow(to_grid(x[:16], nrow=4).numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(f"{name} (first {min(16, r['n'])} of {r['n']})\nscore {r['score']:.4f}", fontsize=9)
        ax.axis("off")
        ax = axes[1][col]
        if view == VIEWS[0]:
            ax.imshow(specs[name], cmap="viridis", interpolation="nearest", vmin=lo, vmax=hi)
            ax.add_patch(Rectangle((-0.5, -0.5), 1, 1, fill=False, ec="red", lw=1.5))
            ax.set_title("log10 mean power spectrum\n(centre: low frequencies; red: Nyquist)", fontsize=8)
        else:
            ax.imshow(r["mean_image"], cmap="gray", interpolation="nearest", vmin=-1, vmax=1)
            ax.set_title("mean image", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])


# --- static figure -------------------------------------------------------------------------------------

def static_figure(kernel: int = 3, stride: int = 2, padding: int = 1, layers: int = 1, n: int = DEFAULT_N,
                  samples: dict | None = None, n_images: int | None = None, view: str = VIEWS[0],
                  add_checker: float = 0.0):
    """The explorer's pictures as one matplotlib Figure: the overlap panel, plus the samples panel if
    ``samples`` is given."""
    import matplotlib.pyplot as plt

    d = overlap_data(kernel, stride, padding, layers, n)
    if samples is None:
        fig, axes = plt.subplots(1, 3, figsize=(13, 4.2))
        draw_overlap(d, axes)
    else:
        sd = samples_data(samples, n_images, add_checker=add_checker)
        cols = max(3, len(sd))
        fig = plt.figure(figsize=(4.3 * cols, 12), layout="constrained")
        sub = fig.subfigures(2, 1, height_ratios=[1, 2])
        draw_overlap(d, sub[0].subplots(1, 3))
        ax2 = sub[1].subplots(2, len(sd), squeeze=False)
        draw_samples(sd, ax2, view)
        return fig
    fig.tight_layout()
    return fig


def samples_figure(samples: dict, n_images: int | None = None, view: str = VIEWS[0], add_checker: float = 0.0):
    """The samples panel alone as a matplotlib Figure."""
    import matplotlib.pyplot as plt

    sd = samples_data(samples, n_images, add_checker=add_checker)
    fig, axes = plt.subplots(2, len(sd), figsize=(3.2 * len(sd), 6.6), squeeze=False)
    draw_samples(sd, axes, view)
    fig.tight_layout()
    return fig


# --- widgets -------------------------------------------------------------------------------------------

def _show(out, fig) -> None:
    import matplotlib.pyplot as plt
    from IPython.display import display

    with out:
        out.clear_output(wait=True)
        display(fig)
    plt.close(fig)


def _overlap_panel(kernel, stride, padding, layers, n):
    import ipywidgets as w
    import matplotlib.pyplot as plt

    style = {"description_width": "initial"}
    sliders = {}
    for name, value in (("kernel", kernel), ("stride", stride), ("padding", padding), ("layers", layers)):
        lo, hi = LIMITS[name]
        sliders[name] = w.IntSlider(value=int(np.clip(value, lo, hi)), min=lo, max=hi, step=1,
                                    description={"kernel": "kernel size k", "stride": "stride s",
                                                 "padding": "padding p", "layers": "stacked layers"}[name],
                                    continuous_update=False, style=style)
    choice = w.Dropdown(options=list(CHOICES), description="upsampler", style=style,
                        value=choice_for(sliders["kernel"].value, sliders["stride"].value, sliders["padding"].value),
                        layout=w.Layout(width="420px"))
    readout = w.HTML().add_class("course-readout")
    out = w.Output()
    busy = {"on": False}

    def refresh(*_):
        d = overlap_data(sliders["kernel"].value, sliders["stride"].value, sliders["padding"].value,
                         sliders["layers"].value, n)
        readout.value = f"<b>{html.escape(overlap_readout(d))}</b>"
        fig, axes = plt.subplots(1, 3, figsize=(13, 4.2))
        draw_overlap(d, axes)
        fig.tight_layout()
        _show(out, fig)

    def on_slider(change):
        if busy["on"]:
            return
        busy["on"] = True
        try:
            choice.value = choice_for(sliders["kernel"].value, sliders["stride"].value, sliders["padding"].value)
        finally:
            busy["on"] = False
        refresh()

    def on_choice(change):
        if busy["on"]:
            return
        params = CHOICES[change["new"]]
        if params is not None:
            busy["on"] = True
            try:
                for name, v in zip(("kernel", "stride", "padding"), params):
                    sliders[name].value = v
            finally:
                busy["on"] = False
        refresh()

    for s in sliders.values():
        s.observe(on_slider, names="value")
    choice.observe(on_choice, names="value")
    refresh()
    controls = w.VBox([w.HBox([sliders["kernel"], sliders["stride"]]), w.HBox([sliders["padding"], sliders["layers"]]),
                       choice])
    box = w.VBox([w.HTML("<b>Overlap of a transposed convolution on a constant input</b> "
                         "(cyan line: interior, unaffected by the border)"), controls, readout, out])
    box.controls = dict(sliders, upsampler=choice)
    box.readout = readout
    box.refresh = refresh
    return box


def _samples_panel(samples):
    import ipywidgets as w
    import matplotlib.pyplot as plt

    sets = _check_samples(samples)
    sizes = [x.shape[0] for x in sets.values()]
    style = {"description_width": "initial"}
    boost = w.FloatSlider(value=0.0, min=0.0, max=0.3, step=0.01, description="add checkerboard of amplitude",
                          continuous_update=False, readout_format=".2f", style=style,
                          layout=w.Layout(width="480px"))
    count = w.IntSlider(value=min(sizes), min=1, max=max(sizes), step=1, description="images used per set",
                        continuous_update=False, style=style, layout=w.Layout(width="480px"))
    view = w.ToggleButtons(options=list(VIEWS), value=VIEWS[0], description="bottom row",
                           style={"description_width": "initial", "button_width": "170px"})
    readout = w.HTML().add_class("course-readout")
    out = w.Output()

    def refresh(*_):
        d = samples_data(sets, count.value, add_checker=boost.value)
        readout.value = f"<b>{html.escape(samples_readout(d, view.value, boost.value))}</b>"
        fig, axes = plt.subplots(2, len(d), figsize=(3.2 * len(d), 6.6), squeeze=False)
        draw_samples(d, axes, view.value)
        fig.tight_layout()
        _show(out, fig)

    for control in (boost, count, view):
        control.observe(refresh, names="value")
    refresh()
    box = w.VBox([w.HTML("<b>Samples, their mean spectrum and checkerboard score</b>"), w.HBox([boost, count]),
                  view, readout, out])
    box.controls = dict(add_checker=boost, images=count, view=view)
    box.readout = readout
    box.refresh = refresh
    return box


def explorer(kernel: int = 3, stride: int = 2, padding: int = 1, layers: int = 1, n: int = DEFAULT_N,
             samples: dict | None = None):
    """The checkerboard explorer (an ipywidgets VBox).

    Sliders for kernel size, stride, padding and the number of stacked layers and a drop-down of
    upsamplers drive the overlap heat map and 1-D profile beside resize-then-convolve. With
    ``samples`` (e.g. {"baseline": imgs, "upsample": imgs, "real": imgs}) a second panel shows them
    with their mean spectrum and checkerboard score. ``box.controls`` and ``box.readout`` give
    access to the widgets from Python.
    """
    import ipywidgets as w

    panel = _overlap_panel(kernel, stride, padding, layers, n)
    children = [panel]
    controls = dict(panel.controls)
    if samples is not None:
        spanel = _samples_panel(samples)
        children.append(spanel)
        controls.update(spanel.controls)
    box = w.VBox(children).add_class("course-widget")
    box.controls = controls
    box.readout = panel.readout
    return box


def samples_explorer(samples: dict):
    """The samples panel on its own (an ipywidgets VBox with its own readout)."""
    import ipywidgets as w

    panel = _samples_panel(samples)
    box = w.VBox([panel]).add_class("course-widget")
    box.controls = panel.controls
    box.readout = panel.readout
    return box
