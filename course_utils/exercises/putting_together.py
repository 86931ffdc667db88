"""Notebook 08's checked exercise: the seed-to-seed spread behind every verdict of the study.

Reference: :func:`course_utils.stats.pooled_sd`, which the compute-aware study uses to decide whether a
change of FID is more than noise.
"""
from __future__ import annotations

from course_utils.exercises.checking import Case, Hints, checker, run_check
from course_utils.stats import pooled_sd

ANSWERS = "answers/08_putting_it_together.md"


def _compare(expected, actual) -> str | None:
    if expected is None:
        return None if actual is None else f"expected None (no group has two values), got {actual!r}"
    if isinstance(actual, bool) or not isinstance(actual, (int, float)):
        return f"expected a float, got {type(actual).__name__} {actual!r}"
    if abs(float(actual) - expected) > 1e-9 * max(1.0, abs(expected)):
        return f"expected {expected:.6g}, got {float(actual):.6g}"
    return None


@checker(nudge="pool the spreads as variances, not as standard deviations: average the sample variances of the "
               "groups that have at least two values, then take the square root; with no such group there is no "
               "spread.",
         formula="pooled sd = √(mean of s² over the groups with n ≥ 2), s² the sample variance (n − 1 in the "
                 "denominator). API: statistics.variance, math.sqrt; None when no group qualifies.")
def check_pooled_sd(student_fn, hints: Hints) -> bool | None:
    """``pooled_sd(groups)``: sqrt of the mean sample variance (n - 1) of the groups with at least two values."""
    specs = [
        ("two presets, three seeds each", [[111.9, 110.2, 113.4], [119.5, 121.0, 117.8]]),
        ("one group of two values", [[100.0, 104.0]]),
        ("single-seed groups are skipped", [[126.6], [119.5, 118.0, 122.0], [136.5]]),
        ("no group has two values: None", [[126.6], [136.5]]),
        ("identical seeds: no spread", [[5.0, 5.0, 5.0]]),
        ("groups of different sizes", [[1.0, 2.0], [10.0, 20.0, 30.0, 40.0]]),
    ]
    cases = [Case(name, {"groups": groups}, pooled_sd(groups)) for name, groups in specs]
    return run_check("pooled_sd", student_fn, cases, _compare, hints)
