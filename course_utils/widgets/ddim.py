"""DDIM explorer (notebook 09): how many sampling steps does a trained network need?

Three layers, as for every widget of the course:

* :func:`sampler_data` samples the same starting noise with DDIM at K steps (and noise level eta) and returns the
  images, the time taken and images/s; :func:`readout_text` turns that into the readout's lines. Unit-tested.
* :func:`static_figure` draws the samples for several K side by side, for non-interactive runs.
* :func:`explorer` is the thin ipywidgets layer: a slider for K, one for eta.

Every K starts from the same noise (the same seed), so the pictures differ only in how the reverse process was
discretized. With eta = 0 the sampler is deterministic; eta = 1 adds as much fresh noise per step as DDPM's
posterior, and with K = T it *is* DDPM with the posterior variance (tests/test_ddim.py).
"""
from __future__ import annotations

import html
import time


from course_utils.diffusion import sample
from course_utils.errors import CourseError

STEPS = (2, 5, 10, 25, 50, 150)
ETAS = (0.0, 0.5, 1.0)


def sampler_data(model, steps: int = 25, eta: float = 1.0, n: int = 16, seed: int = 0) -> dict:
    """{"images", "steps", "eta", "seconds", "images_per_s"}: ``n`` DDIM samples with ``steps`` steps."""
    T = model.config.T
    if not isinstance(steps, int) or not 1 <= steps <= T:
        raise CourseError(f"steps must be a whole number from 1 to T = {T}, got {steps!r}.")
    t0 = time.perf_counter()
    images = sample(model, n, seed=seed, sampler="ddim", steps=steps, eta=eta)
    seconds = time.perf_counter() - t0
    return {"images": images, "steps": steps, "eta": eta, "seconds": seconds, "images_per_s": n / seconds}


def readout_text(data: dict, ddpm_seconds: float | None = None) -> str:
    """One line on what was sampled and how fast (and how much faster than DDPM's T steps, if measured)."""
    line = (f"DDIM, {data['steps']} steps, eta {data['eta']:g}: {len(data['images'])} images in "
            f"{data['seconds']:.2f} s ({data['images_per_s']:.1f} images/s)")
    if ddpm_seconds:
        line += f"; DDPM's 150 steps took {ddpm_seconds:.2f} s, {ddpm_seconds / data['seconds']:.1f}x longer"
    return line


def static_figure(model, steps=(5, 10, 25, 50, 150), eta: float = 1.0, n: int = 16, seed: int = 0):
    """Samples from the same noise at each K of ``steps``, side by side (a matplotlib figure)."""
    from course_utils import plotting
    grids = {}
    for k in steps:
        d = sampler_data(model, k, eta, n, seed)
        grids[f"DDIM K={k}, eta {eta:g} ({d['images_per_s']:.0f} img/s)"] = d["images"]
    return plotting.compare_grids(grids, size=2.4)


def explorer(model, n: int = 16, seed: int = 0, steps: int = 25, eta: float = 1.0):
    """The interactive DDIM explorer (an ``ipywidgets.VBox`` with class ``course-widget``), with ``.controls``,
    ``.readout`` and ``.output`` for tests to drive it from Python."""
    import ipywidgets as W
    import matplotlib.pyplot as plt
    from IPython.display import display

    from course_utils import plotting
    k = W.SelectionSlider(options=list(STEPS), value=steps if steps in STEPS else 25, description="steps K",
                          continuous_update=False)
    e = W.SelectionSlider(options=list(ETAS), value=eta if eta in ETAS else 1.0, description="eta",
                          continuous_update=False)
    readout = W.HTML().add_class("course-readout")
    out = W.Output()

    def update(_=None):
        data = sampler_data(model, k.value, e.value, n, seed)
        readout.value = "<pre style='margin:0'>" + html.escape(readout_text(data)) + "</pre>"
        fig = plotting.show_grid(data["images"], f"DDIM, K = {k.value}, eta = {e.value:g}", figsize=(3.4, 3.4))
        with out:
            out.clear_output(wait=True)
            display(fig)
        plt.close(fig)

    for w in (k, e):
        w.observe(update, names="value")
    box = W.VBox([W.HBox([k, e]), readout, out]).add_class("course-widget")
    box.controls = {"steps": k, "eta": e}
    box.readout, box.output = readout, out
    update()
    return box
