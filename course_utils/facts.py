"""The shipped facts the course's documents quote, read from the repository's JSON files.

The walkthroughs, the answers and the docs quote measured numbers; each is checked against its source by
``tests/claims.py`` through these helpers, and a teacher can paste the same lines into a notebook::

    from course_utils.facts import ck, row, study
    ck("best-cpu")["metrics"]["fid"]                        # a shipped checkpoint's manifest
    row(study("cpu"), "baseline")["equal_compute"]["fid"]    # a row of the compute-aware study's summary

``J(path)`` reads any JSON file of the repository; ``sampler``, ``schedule``, ``ablation`` and ``ema_check`` pick a
row of those shipped studies; ``times()`` holds the times measured by hand (docs/measured_times.json).

The facts quoted in several documents have a name, defined once in ``FACTS``: ``fact("best_cpu.fid")`` is what a
claim marker names (``<!-- claim: fact("best_cpu.fid") -->``), so a document never repeats the path to a number.
"""
from __future__ import annotations

import difflib
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


# The facts that several documents quote, by name. Each is read from the shipped results when asked for.
FACTS = {
    "best_cpu.fid": lambda: ck("best-cpu")["metrics"]["fid"],
    "best_cpu.n": lambda: ck("best-cpu")["metrics"]["n"],
    "best_cpu.fid_floor": lambda: ck("best-cpu")["metrics"]["fid_floor"],
    "best_cpu.steps": lambda: ck("best-cpu")["steps"],
    "best_cpu.train_minutes": lambda: ck("best-cpu")["train_minutes"],
    "optimized_final.fid": lambda: ck("optimized-final")["metrics"]["fid"],
    "optimized_final.n": lambda: ck("optimized-final")["metrics"]["n"],
    "optimized_final.steps": lambda: ck("optimized-final")["steps"],
    "baseline.checkerboard_real": lambda: ck("baseline")["metrics"]["checkerboard_real"],
    "study.reference_steps": lambda: study("cpu")["settings"]["reference_steps"],
    "study.optimized.train_gflops": lambda: row(study("cpu"), "optimized")["train_gflops"],
    "study.baseline.checkerboard_ratio": lambda: row(study("cpu"), "baseline")["equal_steps"]["checkerboard_ratio"],
    "schedules.steps": lambda: J("results/schedules/baseline/results.json")["steps"],
    "schedules.linear.fid": lambda: schedule("linear")["noise_start"]["fid"][0],
    "schedules.linear_zero_snr.fid": lambda: schedule("linear_zero_snr")["noise_start"]["fid"][0],
    "samplers.n": lambda: J("results/samplers/optimized-final/results.json")["n"],
    "samplers.ddpm.fid": lambda: sampler("DDPM, 150 steps")["fid"],
    # the EMA/BatchNorm check's longest run (4,000 steps)
    "ema_check.last.step": lambda: ema_check(4000)["step"],
    "ema_check.last.raw.fid": lambda: ema_check(4000)["raw"]["fid"],
    "ema_check.last.raw_recomputed.fid": lambda: ema_check(4000)["raw_recomputed"]["fid"],
    "ema_check.last.ema_recomputed.fid": lambda: ema_check(4000)["ema_recomputed"]["fid"],
}
# each notebook's minutes under quick, top to bottom on an idle 2-core machine (docs/measured_times.json)
FACTS.update({f"quick_minutes.{k:02d}": (lambda k=k: times()["notebooks_quick"]["seconds"][f"{k:02d}"] / 60)
              for k in range(1, 12)})


def fact(name: str):
    """The named fact ``name`` (see ``FACTS``), read from the shipped results."""
    if name not in FACTS:
        close = difflib.get_close_matches(name, FACTS, n=3)
        raise CourseError(f"no fact named {name!r}." + (f" Did you mean {', '.join(map(repr, close))}?" if close
                                                         else f" The named facts: {', '.join(FACTS)}."))
    return FACTS[name]()
