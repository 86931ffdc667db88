"""Small statistics the study's verdicts rest on (kept at the bottom of the package so that the exercise checkers
and the study share one implementation)."""
from __future__ import annotations

import math
import statistics


def pooled_sd(groups: list[list[float]]) -> float | None:
    """The pooled standard deviation of several groups of values (one group per preset, one value per seed): the
    square root of the mean sample variance (n - 1) of the groups with two or more values; None if there are none."""
    var = [statistics.variance(g) for g in groups if len(g) > 1]
    return math.sqrt(statistics.fmean(var)) if var else None
