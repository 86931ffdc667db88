"""Figures of the walkthroughs 01-05 (see :mod:`course_utils.figures`)."""
from __future__ import annotations

from course_utils.figures import figure  # noqa: F401 - used by the figures defined below
