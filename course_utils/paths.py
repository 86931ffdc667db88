"""Where the course's files live. This module alone decides.

The *course folder* holds ``checkpoints/`` (shipped weights and manifests), ``results/`` (shipped studies),
``runs/`` (your own training runs) and ``data/`` (the dataset cache). It is, in this order:

1. ``$COURSE_HOME``, if set: the documented setting for an installed package (``pip install .``) used
   from anywhere, e.g. ``COURSE_HOME=~/ddpm-course python -m course_utils evaluate baseline``;
2. the checkout this package was imported from (running from the repository, or an editable install);
3. the current directory or one of its parents, when it is a checkout of the course (a non-editable
   ``pip install .`` run from the repository's root).

``$COURSE_RUNS_DIR`` and ``$COURSE_DATA_DIR`` move just the runs or the dataset cache.
"""
from __future__ import annotations

import os
from pathlib import Path

from course_utils.errors import CourseError

PACKAGE_DIR = Path(__file__).resolve().parent
USER_CACHE = Path.home() / ".cache" / "ddpm-course"


def is_course_folder(folder: Path) -> bool:
    """A checkout of the course: pyproject.toml, the course_utils package and checkpoints/ side by side."""
    return (folder / "pyproject.toml").is_file() and (folder / "course_utils").is_dir() and (folder / "checkpoints").is_dir()


def find_home() -> Path | None:
    """The course folder (see the module's docstring), or None when there is none."""
    env = os.environ.get("COURSE_HOME")
    if env:
        return Path(env).expanduser().resolve()
    if is_course_folder(PACKAGE_DIR.parent):
        return PACKAGE_DIR.parent
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if is_course_folder(folder):
            return folder
    return None


def home() -> Path:
    """The course folder; a clear error when there is none."""
    found = find_home()
    if found is None:
        raise CourseError("the course folder (with checkpoints/ and results/) was not found: the package is installed "
                          "outside a checkout of the course. Fix: run the command from the repository's root, or set "
                          "COURSE_HOME=/path/to/the/checkout.")
    if not found.is_dir():
        raise CourseError(f"COURSE_HOME={found} is not a folder. Fix: point COURSE_HOME at the course's checkout.")
    return found


def checkpoint_dir() -> Path:
    """``<course folder>/checkpoints``: the shipped weights and their manifests."""
    return home() / "checkpoints"


def results_dir() -> Path:
    """``<course folder>/results``: the shipped studies."""
    return home() / "results"


def runs_root() -> Path:
    """``$COURSE_RUNS_DIR``, else ``<course folder>/runs``, else ``~/.cache/ddpm-course/runs``."""
    if os.environ.get("COURSE_RUNS_DIR"):
        return Path(os.environ["COURSE_RUNS_DIR"]).expanduser()
    found = find_home()
    return found / "runs" if found is not None else USER_CACHE / "runs"


def cache_dir() -> Path:
    """``$COURSE_DATA_DIR``, else ``<course folder>/data``, else ``~/.cache/ddpm-course``."""
    if os.environ.get("COURSE_DATA_DIR"):
        return Path(os.environ["COURSE_DATA_DIR"]).expanduser()
    found = find_home()
    return found / "data" if found is not None else USER_CACHE


def relative(path: Path) -> str:
    """``path`` relative to the course folder when it lies inside it (for manifests), else as it is."""
    found = find_home()
    try:
        return str(Path(path).resolve().relative_to(found)) if found else str(path)
    except ValueError:
        return str(path)
