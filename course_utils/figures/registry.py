"""The register of the walkthroughs' figures: :func:`figure` records a drawing function under its file name."""
from __future__ import annotations

from typing import Callable

FIGURES: dict[str, Callable] = {}


def figure(name: str):
    """Register the decorated function (no arguments, returns a matplotlib Figure) as ``walkthroughs/figures/name``."""
    if not name.endswith(".png") or "/" in name:
        raise ValueError(f"a figure's name is a file name ending in .png, got {name!r}")

    def register(fn):
        if name in FIGURES and FIGURES[name].__qualname__ != fn.__qualname__:
            raise ValueError(f"two figures are called {name}")
        FIGURES[name] = fn
        return fn
    return register
