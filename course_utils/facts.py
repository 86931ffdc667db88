"""The shipped facts the course's documents quote, read from the repository's JSON files.

The walkthroughs, the answers and the docs quote measured numbers; each is checked against its source by
``tests/claims.py`` through these helpers, and a teacher can paste the same lines into a notebook::

    from course_utils.facts import ck, row, study
    ck("best-cpu")["metrics"]["fid"]                        # a shipped checkpoint's manifest
    row(study("cpu"), "baseline")["equal_compute"]["fid"]    # a row of the compute-aware study's summary

``J(path)`` reads any JSON file of the repository; ``sampler``, ``schedule``, ``ablation`` and ``ema_check`` pick a
row of those shipped studies; ``times()`` holds the times measured by hand (docs/measured_times.json).
"""
from __future__ import annotations

import json

from course_utils.errors import CourseError
from course_utils.paths import home


def J(path: str) -> dict:
    """The JSON file ``path`` of the course folder (relative to it)."""
    p = home() / path
    if not p.is_file():
        raise CourseError(f"{path} does not exist in the course folder {home()}")
    return json.loads(p.read_text())


def ck(name: str) -> dict:
    """The manifest of the shipped checkpoint ``name`` (checkpoints/NAME.json)."""
    return J(f"checkpoints/{name}.json")


def study(name: str = "cpu") -> dict:
    """The summary of a compute-aware study (results/study/NAME/summary.json)."""
    return J(f"results/study/{name}/summary.json")


def pick(rows, **match) -> dict:
    """The first row (of a list, or of a dict's "rows") whose fields equal ``match``."""
    found = [r for r in (rows["rows"] if isinstance(rows, dict) else rows) if all(r.get(k) == v for k, v in match.items())]
    if not found:
        raise KeyError(f"no row with {match}")
    return found[0]


def row(table, preset: str) -> dict:
    """The row of ``preset`` in a study summary or any list of dicts with a "preset"."""
    return pick(table, preset=preset)


def sampler(label: str) -> dict:
    """A row of the sampler comparison of optimized-final (results/samplers/optimized-final)."""
    return pick(J("results/samplers/optimized-final/results.json"), label=label)


def schedule(name: str) -> dict:
    """A row of the schedule comparison (results/schedules/baseline)."""
    return pick(J("results/schedules/baseline/results.json"), schedule=name)


def ablation(preset: str) -> dict:
    """A preset's row of the shipped 250-step ablation (results/ablation/ladder)."""
    return pick(J("results/ablation/ladder/results.json")["summary"], preset=preset)


def ema_check(step: int) -> dict:
    """A row of the EMA/BatchNorm check (results/recipe/baseline-ema-batchnorm)."""
    return pick(J("results/recipe/baseline-ema-batchnorm/results.json"), step=step)


def times() -> dict:
    """The times measured by hand (docs/measured_times.json)."""
    return J("docs/measured_times.json")
