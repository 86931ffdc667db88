"""Rearrange explorer (notebook 05): where every pixel goes in ``b c (h p1) (w p2) -> b (c p1 p2) h w``.

Three layers, as for every widget of the course:

* :func:`explorer_data` and :func:`readout_text` - pure: the labelled input, the output channels,
  where each output value came from, the inverse round trip and (optionally) which pixels MaxPool
  keeps. An impossible combination (size not divisible by p1 or p2) gives ``valid=False`` and a
  message, never an exception.
* :func:`static_figure` - the same picture as a matplotlib Figure (fallback for non-interactive runs).
* :func:`explorer` - the ipywidgets layer.

The maths lives in :mod:`course_utils.lessons.rearrange_pooling`; this module only arranges it.
"""
from __future__ import annotations

import html

import numpy as np
import torch

from course_utils.lessons import rearrange_pooling as P
from course_utils.errors import CourseError

COLOUR_MODES = ("patch position", "pixel")
MAXPOOL_INPUTS = ("random", "labelled")
LIMITS = dict(size=(2, 12), channels=(1, 3), p=(1, 3))


def _palette(n: int) -> np.ndarray:
    import matplotlib
    if n <= 10:
        return np.array([matplotlib.colormaps["tab10"](i)[:3] for i in range(n)])
    return np.array([matplotlib.colormaps["turbo"](v)[:3] for v in np.linspace(0.05, 0.95, n)])


def _check_int(name: str, value, lo: int, hi: int) -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or not lo <= value <= hi:
        raise CourseError(f"{name} must be an integer from {lo} to {hi}, got {value!r}.")


def input_colours(channels: int, size: int, p1: int, p2: int, mode: str = COLOUR_MODES[0]) -> np.ndarray:
    """(C, H, W, 3) RGB colours of the input pixels.

    ``"patch position"``: the colour says where the pixel sits inside its p1 x p2 patch (so each output
    channel is one colour); ``"pixel"``: every pixel of a channel has its own colour.
    """
    if mode not in COLOUR_MODES:
        raise CourseError(f"colour mode {mode!r}; choose one of {COLOUR_MODES}.")
    r = np.arange(size)[:, None]
    c = np.arange(size)[None, :]
    if mode == "patch position" and p1 >= 1 and p2 >= 1:
        key = (r % p1) * p2 + (c % p2)
        pal = _palette(p1 * p2)
    else:
        key = r * size + c
        pal = _palette(size * size)
    rgb = pal[key]
    return np.broadcast_to(rgb, (channels, size, size, 3)).copy()


def explorer_data(size: int = 4, channels: int = 1, p1: int = 2, p2: int = 2, colour: str = COLOUR_MODES[0],
                  maxpool_input: str = "random", seed: int = 0) -> dict:
    """Everything the explorer shows, for a ``channels`` x ``size`` x ``size`` labelled input.

    Keys: ``valid`` and ``message`` (why not, if invalid); ``input`` (C, H, W) labels; ``input_rgb``;
    and when valid ``output`` (C*p1*p2, H/p1, W/p2) labels, ``output_rgb``, ``sources`` (per output
    value its input (c, row, col)), ``round_trip`` (the inverse rearrange of the output), ``round_trip_exact``,
    ``pixel_unshuffle`` (True/False, None when p1 != p2), and ``maxpool``: the values MaxPool sees,
    its survivors mask and its output.
    """
    _check_int("size", size, *LIMITS["size"])
    _check_int("channels", channels, *LIMITS["channels"])
    _check_int("p1", p1, *LIMITS["p"])
    _check_int("p2", p2, *LIMITS["p"])
    if maxpool_input not in MAXPOOL_INPUTS:
        raise CourseError(f"maxpool_input={maxpool_input!r}; choose one of {MAXPOOL_INPUTS}.")
    x = P.labelled_grid(channels, size, size)
    data = {"size": size, "channels": channels, "p1": p1, "p2": p2, "colour": colour,
            "maxpool_input": maxpool_input, "seed": seed, "n": channels * size * size,
            "input": x[0].numpy(), "input_rgb": input_colours(channels, size, p1, p2, colour)}
    problem = P.check_rearrange(size, size, p1, p2)
    data["valid"] = problem is None
    data["message"] = problem or ""
    if problem:
        return data
    y = P.space_to_depth(x, p1, p2)
    src = P.source_map(channels, size, size, p1, p2).numpy()
    rgb = data["input_rgb"][src[..., 0], src[..., 1], src[..., 2]]
    back = P.depth_to_space(y, p1, p2)
    if maxpool_input == "random":
        gen = torch.Generator().manual_seed(seed)
        values = torch.randn(1, channels, size, size, generator=gen).mul(10).round().div(10)
    else:
        values = x.double()
    mask = P.maxpool_survivors(values, p1, p2)
    pooled = torch.nn.functional.max_pool2d(values.double(), (p1, p2))
    data.update({
        "output": y[0].numpy(), "output_rgb": rgb, "sources": src, "round_trip": back[0].numpy(),
        "round_trip_exact": P.round_trip_exact(x, p1, p2),
        "pixel_unshuffle": P.matches_pixel_unshuffle(x, p1) if p1 == p2 else None,
        "out_shape": tuple(y.shape[1:]),
        "maxpool": {"values": values[0].numpy(), "survivors": mask[0].numpy(), "pooled": pooled[0].numpy(),
                    "kept": int(mask.sum()), "fraction": float(mask.float().mean())},
    })
    return data


def _channel_members(data: dict, k: int) -> list[int]:
    return sorted(int(v) for v in data["output"][k].ravel())


def readout_text(data: dict, show_maxpool: bool = True) -> str:
    """Plain-text lines summarising ``explorer_data``'s numbers."""
    c, s, p1, p2 = data["channels"], data["size"], data["p1"], data["p2"]
    lines = [f"input: {c} channel(s) x {s} x {s} = {data['n']} numbers; patches p1 x p2 = {p1} x {p2}; "
             f"colour = {data['colour']}"]
    if not data["valid"]:
        lines.append("INVALID: " + data["message"])
        lines.append(f"MaxPool panel: {'unavailable until the patch size fits' if show_maxpool else 'off'} "
                     f"(input: {data['maxpool_input']})")
        return "\n".join(lines)
    oc, oh, ow = data["out_shape"]
    lines.append(f"output: {oc} channels x {oh} x {ow} = {oc * oh * ow} numbers (the same numbers, moved)")
    members = _channel_members(data, 0)
    more = f" (and {len(members) - 8} more)" if len(members) > 8 else ""
    lines.append(f"output channel k = c*{p1 * p2} + a*{p2} + b holds input channel c at rows a, a+{p1}, ... and "
                 f"columns b, b+{p2}, ...; e.g. channel 0 holds pixels {members[:8]}{more}")
    if data["pixel_unshuffle"] is None:
        lines.append("nn.PixelUnshuffle: not comparable (it uses one factor for both axes; here p1 != p2)")
    else:
        lines.append(f"equal to nn.PixelUnshuffle({p1}): {data['pixel_unshuffle']}")
    lines.append(f"inverse rearrange gives back the input exactly: {data['round_trip_exact']}")
    m = data["maxpool"]
    if show_maxpool:
        lines.append(f"MaxPool2d(({p1}, {p2})) on the {data['maxpool_input']} input keeps {m['kept']} of "
                     f"{data['n']} numbers ({100 * m['fraction']:.1f}%); the rest are gone for good")
    else:
        lines.append(f"MaxPool panel: off (input: {data['maxpool_input']})")
    return "\n".join(lines)


def _text_colour(rgb) -> str:
    return "black" if 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2] > 0.55 else "white"


def _panel(ax, rgb: np.ndarray, labels: np.ndarray | None, title: str, fontsize: float, p1: int = 0, p2: int = 0):
    h, w = rgb.shape[:2]
    ax.imshow(rgb, interpolation="nearest", extent=(-0.5, w - 0.5, h - 0.5, -0.5))
    if labels is not None:
        for i in range(h):
            for j in range(w):
                ax.text(j, i, f"{labels[i, j] + 0:g}", ha="center", va="center", fontsize=fontsize,
                        color=_text_colour(rgb[i, j]))
    for k in range(h + 1):
        ax.axhline(k - 0.5, color="white", lw=0.5)
    for k in range(w + 1):
        ax.axvline(k - 0.5, color="white", lw=0.5)
    if p1 and p2:  # patch boundaries
        for k in range(0, h + 1, p1):
            ax.axhline(k - 0.5, color="black", lw=1.5)
        for k in range(0, w + 1, p2):
            ax.axvline(k - 0.5, color="black", lw=1.5)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=8)


def _draw(fig, data: dict, show_maxpool: bool = True, numbers: bool | None = None):
    from matplotlib.patches import Rectangle

    c, s, p1, p2 = data["channels"], data["size"], data["p1"], data["p2"]
    numbers = s <= 8 if numbers is None else numbers
    fs = max(4.0, 9.0 - 0.6 * s)
    if not data["valid"]:
        axes = fig.subplots(1, c, squeeze=False)[0]
        for ch, ax in enumerate(axes):
            _panel(ax, data["input_rgb"][ch], data["input"][ch] if numbers else None, f"input channel {ch}", fs)
        import textwrap
        fig.suptitle("\n".join(textwrap.wrap(data["message"], 75)), fontsize=8, color="tab:red")
        return fig
    mp = show_maxpool
    ncols = 1 + p2 + 1 + (2 if mp else 0)
    gs = fig.add_gridspec(c * p1, ncols, width_ratios=[p2] + [1] * p2 + [p2] + ([p2, 1] if mp else []))
    for ch in range(c):
        rows = slice(ch * p1, (ch + 1) * p1)
        _panel(fig.add_subplot(gs[rows, 0]), data["input_rgb"][ch], data["input"][ch] if numbers else None,
               f"input channel {ch}", fs, p1, p2)
        for a in range(p1):
            for b in range(p2):
                k = ch * p1 * p2 + a * p2 + b
                _panel(fig.add_subplot(gs[ch * p1 + a, 1 + b]), data["output_rgb"][k],
                       data["output"][k] if numbers else None, f"out ch {k}", fs)
        _panel(fig.add_subplot(gs[rows, 1 + p2]), data["input_rgb"][ch], data["round_trip"][ch] if numbers else None,
               f"inverse of ch {ch * p1 * p2}..{(ch + 1) * p1 * p2 - 1}" + (" (exact)" if data["round_trip_exact"] else ""),
               fs, p1, p2)
        if mp:
            m = data["maxpool"]
            vals = m["values"][ch]
            lo, hi = float(vals.min()), float(vals.max())
            grey = (vals - lo) / (hi - lo if hi > lo else 1.0)
            grey_rgb = np.stack([0.35 + 0.6 * grey] * 3, -1)
            ax = fig.add_subplot(gs[rows, 2 + p2])
            _panel(ax, grey_rgb, vals if numbers else None, f"MaxPool input ch {ch}", fs, p1, p2)
            for i, j in zip(*np.nonzero(m["survivors"][ch])):
                ax.add_patch(Rectangle((j - 0.45, i - 0.45), 0.9, 0.9, fill=False, ec="tab:red", lw=2))
            pooled = m["pooled"][ch]
            pg = (pooled - lo) / (hi - lo if hi > lo else 1.0)
            _panel(fig.add_subplot(gs[rows, 3 + p2]), np.stack([0.35 + 0.6 * pg] * 3, -1),
                   pooled if numbers else None, "MaxPool output", fs)
    fig.suptitle(f"rearrange b c (h p1) (w p2) -> b (c p1 p2) h w with p1={p1}, p2={p2}: "
                 f"colour = {data['colour']}" + ("; red boxes: the pixels MaxPool keeps" if mp else ""), fontsize=9)
    return fig


def _figsize(data: dict, show_maxpool: bool) -> tuple[float, float]:
    if not data["valid"]:
        return (max(6.0, 2.6 * data["channels"]), 3.8)
    p2 = data["p2"]
    units = p2 + p2 + p2 + ((p2 + 1) if show_maxpool else 0)
    scale = 2.6 / max(p2, 1)
    return (min(16.0, 1.2 + scale * units * 1.05), min(12.0, 0.9 + 2.6 * data["channels"] * 1.02))


def static_figure(size: int = 4, channels: int = 1, p1: int = 2, p2: int = 2, colour: str = COLOUR_MODES[0],
                  show_maxpool: bool = True, maxpool_input: str = "random", seed: int = 0):
    """The explorer's picture as a plain matplotlib Figure."""
    import matplotlib.pyplot as plt

    data = explorer_data(size, channels, p1, p2, colour, maxpool_input, seed)
    fig = plt.figure(figsize=_figsize(data, show_maxpool), layout="constrained")
    return _draw(fig, data, show_maxpool)


def explorer(size: int = 4, channels: int = 1, p1: int = 2, p2: int = 2, colour: str = COLOUR_MODES[0],
             show_maxpool: bool = True, maxpool_input: str = "random", seed: int = 0):
    """The interactive rearrange explorer (an ``ipywidgets.VBox`` with class ``course-widget``).

    The box has ``.controls`` (a dict of the widgets), ``.readout`` and ``.output`` attributes so tests
    can drive it from Python. Impossible combinations show a message in the readout instead of failing.
    """
    import ipywidgets as W
    import matplotlib.pyplot as plt
    from IPython.display import display

    style = {"description_width": "initial"}
    w_size = W.IntSlider(value=size, min=LIMITS["size"][0], max=LIMITS["size"][1], description="image size",
                         continuous_update=False, style=style)
    w_ch = W.IntSlider(value=channels, min=1, max=3, description="channels", continuous_update=False, style=style)
    w_p1 = W.IntSlider(value=p1, min=1, max=3, description="p1 (rows)", continuous_update=False, style=style)
    w_p2 = W.IntSlider(value=p2, min=1, max=3, description="p2 (cols)", continuous_update=False, style=style)
    w_colour = W.ToggleButtons(options=COLOUR_MODES, value=colour, description="colour by", style=style)
    w_mp = W.Checkbox(value=show_maxpool, description="show MaxPool survivors", indent=False)
    w_mp_in = W.ToggleButtons(options=MAXPOOL_INPUTS, value=maxpool_input, description="MaxPool input",
                              style=style)
    readout = W.HTML().add_class("course-readout")
    out = W.Output()

    def update(_=None):
        try:
            data = explorer_data(w_size.value, w_ch.value, w_p1.value, w_p2.value, w_colour.value,
                                 w_mp_in.value, seed)
        except CourseError as err:  # cannot happen with the sliders' ranges, but never raise in a callback
            readout.value = f"<pre style='margin:0'>{html.escape(str(err))}</pre>"
            return
        readout.value = "<pre style='margin:0; white-space:pre-wrap'>" + \
            html.escape(readout_text(data, w_mp.value)) + "</pre>"
        fig = plt.figure(figsize=_figsize(data, w_mp.value), layout="constrained")
        _draw(fig, data, w_mp.value)
        with out:
            out.clear_output(wait=True)
            display(fig)
        plt.close(fig)

    for w in (w_size, w_ch, w_p1, w_p2, w_colour, w_mp, w_mp_in):
        w.observe(update, names="value")
    box = W.VBox([
        W.HBox([w_size, w_ch]),
        W.HBox([w_p1, w_p2]),
        W.HBox([w_colour]),
        W.HBox([w_mp, w_mp_in]),
        readout, out,
    ]).add_class("course-widget")
    box.controls = {"size": w_size, "channels": w_ch, "p1": w_p1, "p2": w_p2, "colour": w_colour,
                    "show_maxpool": w_mp, "maxpool_input": w_mp_in}
    box.readout, box.output = readout, out
    update()
    return box
