"""The walkthroughs' figures, drawn by code: ``python -m course_utils figures`` writes every one of them to
``walkthroughs/figures/`` (``--only NAME`` for some, ``--list`` to name them).

Each figure is a function that returns a matplotlib figure, registered under its file name with :func:`course_utils.figures.registry.figure`;
the functions live in one module per group of notebooks (:mod:`course_utils.figures.early` for 01-05,
:mod:`course_utils.figures.late` for 06-10). They read the shipped checkpoints and results, so a figure changes
when the measurement does, and nobody pastes a picture by hand.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from course_utils.errors import CourseError
from course_utils.figures import early, late  # noqa: F401 - they register on import
from course_utils.figures.registry import FIGURES, figure  # noqa: F401 - figure: the decorator, also from here
from course_utils.paths import home


def figures_dir() -> Path:
    return home() / "walkthroughs" / "figures"


def registry() -> dict[str, Callable]:
    """Every figure, by file name (importing the modules that define them)."""
    return dict(sorted(FIGURES.items()))


def make(names: list[str] | None = None, out: str | Path | None = None, progress: bool = True) -> list[Path]:
    """Draw the named figures (default: all) into ``out`` (default walkthroughs/figures/); returns the files."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    figs = registry()
    unknown = [n for n in (names or []) if n not in figs]
    if unknown:
        raise CourseError(f"no figure called {', '.join(unknown)}. Figures: {', '.join(figs)}.")
    folder = Path(out) if out else figures_dir()
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name in names or list(figs):
        fig = figs[name]()
        dest = folder / name
        tmp = dest.with_suffix(".tmp.png")
        fig.savefig(tmp, dpi=100, bbox_inches="tight", metadata={"Software": None})
        plt.close(fig)
        tmp.replace(dest)
        written.append(dest)
        if progress:
            print(f"wrote {dest}")
    return written
