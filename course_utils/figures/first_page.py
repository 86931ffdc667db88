"""The picture on the course's first page (README.md): samples of the shipped ``best-cpu`` model beside real
Fashion-MNIST test images.

    python -m course_utils.figures.first_page          # writes docs/first_page.png (a few seconds on a CPU)

It is not one of the walkthroughs' figures (those live in ``walkthroughs/figures/`` and are drawn by
``python -m course_utils figures``), so it has its own small command.
"""
from __future__ import annotations

import sys
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


def draw():
    """The figure: N best-cpu samples (seed 0, DDIM with 25 steps, eta 1) beside the first N test images."""
    found = load_shipped("best-cpu")
    if found is None:
        raise CourseError("no checkpoints/best-cpu.safetensors; train it with: python -m course_utils best-cpu")
    model, _ = found
    grids = {f"best-cpu: {N} samples ({DDIM_STEPS} DDIM steps)": sample(model, N, seed=SEED, sampler="ddim",
                                                                        steps=DDIM_STEPS, eta=1.0),
             f"real Fashion-MNIST: {N} test images": load("test").images[:N]}
    return plotting.compare_grids(grids, nrow=NROW, size=4.2)


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
