"""The picture on the course's first page (README.md): samples of the shipped ``best-cpu`` model beside real
Fashion-MNIST test images.

    python -m course_utils.figures.first_page          # writes docs/first_page.png (a few seconds on a CPU)

Notebook 01 opens with the same picture, smaller, and one image's way from noise to sample: :func:`first_minute`.

It is not one of the walkthroughs' figures (those live in ``walkthroughs/figures/`` and are drawn by
``python -m course_utils figures``), so it has its own small command.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

from course_utils import plotting
from course_utils.data import load
from course_utils.diffusion import sample
from course_utils.errors import CourseError
from course_utils.paths import home
from course_utils.runs import load_shipped

N = 32           # images per grid
NROW = 8         # images per row
DDIM_STEPS = 25  # DDIM steps, eta 1: about 6x faster than the 150 DDPM steps (docs/results.md)
SEED = 0
NAME = "first_page.png"


def path() -> Path:
    return home() / "docs" / NAME


def _best_cpu():
    found = load_shipped("best-cpu")
    if found is None:
        raise CourseError("no checkpoints/best-cpu.safetensors; train it with: python -m course_utils best-cpu")
    return found[0]


def draw(n: int = N, nrow: int = NROW):
    """The figure: n best-cpu samples (seed 0, DDIM with 25 steps, eta 1) beside the first n test images."""
    grids = {f"best-cpu: {n} samples ({DDIM_STEPS} DDIM steps)": sample(_best_cpu(), n, seed=SEED, sampler="ddim",
                                                                        steps=DDIM_STEPS, eta=1.0),
             f"real Fashion-MNIST: {n} test images": load("test").images[:n]}
    return plotting.compare_grids(grids, nrow=nrow, size=4.2 * n / N if n < N else 4.2)


def first_minute(n: int = 16, frames: int = 9) -> float:
    """Notebook 01's opening: n best-cpu samples beside n real images, then the first sample's way from pure noise
    to the image (``frames`` snapshots of the same DDIM run). Shows both figures and returns the seconds taken."""
    import matplotlib.pyplot as plt
    from IPython.display import display
    start = time.perf_counter()
    x, snaps, snap_t = sample(_best_cpu(), n, seed=SEED, sampler="ddim", steps=DDIM_STEPS, eta=1.0, frames=frames)
    grids = plotting.compare_grids({f"best-cpu: {n} samples, {DDIM_STEPS} DDIM steps": x,
                                    f"real Fashion-MNIST: {n} test images": load("test").images[:n]},
                                   nrow=n // 4 if n >= 8 else None, size=2.6)
    strip = plotting.denoising_strip(snaps, snap_t, rows=1)
    for fig in (grids, strip):
        display(fig)
        plt.close(fig)
    return time.perf_counter() - start


def make(out: str | Path | None = None) -> Path:
    """Draw the figure into ``out`` (default docs/first_page.png); returns the file."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    dest = Path(out) if out else path()
    dest.parent.mkdir(parents=True, exist_ok=True)
    fig = draw()
    tmp = dest.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=100, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    tmp.replace(dest)
    return dest


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    print(f"wrote {make(argv[0] if argv else None)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
