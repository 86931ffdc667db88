# Notebooks and tests run with the seconds-long budget unless the caller says otherwise.
import os

os.environ.setdefault("COURSE_BUDGET", "ci")
