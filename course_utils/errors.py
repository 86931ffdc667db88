"""One exception type for every mistake a student or a command line can make.

Each message says what was wrong and how to fix it; the CLI prints it without a traceback.
"""


class CourseError(ValueError):
    """A problem with the user's input or environment, with a message that names the fix."""


class DatasetNotFound(CourseError):
    """Fashion-MNIST could not be found or fetched."""


class CheckpointError(CourseError):
    """A checkpoint is missing, corrupt, truncated or belongs to another preset."""


class TrainingDiverged(CourseError):
    """The loss became NaN or infinite."""
