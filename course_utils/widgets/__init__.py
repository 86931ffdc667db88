"""Interactive explorers. Each is a pure compute function (unit-tested), a thin ipywidgets layer and
a static matplotlib fallback for non-interactive runs (nbval, rendered pages).

Modules: ``checkerboard`` (transposed-convolution overlap), ``gelu`` (GELU vs ReLU),
``rearrange_pooling`` (space-to-depth pooling), ``ddim`` (DDIM steps), ``quiz`` (the self-check quiz).

A function that draws a course widget (a box with the class ``course-widget``) is named ``explorer``,
``<something>_explorer`` or ``quiz``. :data:`ENTRY_POINTS` lists them all, as "module.function", read from this
folder's sources; the browser test uses it to find every notebook that draws a widget.
"""
from __future__ import annotations

import ast as _ast
from pathlib import Path as _Path


def _entry_points() -> tuple[str, ...]:
    found = []
    for path in sorted(_Path(__file__).parent.glob("*.py")):
        if path.stem.startswith("_"):
            continue
        for node in _ast.parse(path.read_text()).body:
            if isinstance(node, _ast.FunctionDef) and not node.name.startswith("_") and (
                    node.name in ("explorer", "quiz") or node.name.endswith("_explorer")):
                found.append(f"{path.stem}.{node.name}")
    return tuple(found)


ENTRY_POINTS: tuple[str, ...] = _entry_points()
