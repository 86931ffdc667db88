"""course_utils: the only home of the course's model, data, training, metric and widget code.

Notebooks import from here and show the real source of a block with ``inspect.getsource``.
"""
from .errors import CheckpointError, CourseError, DatasetNotFound, TrainingDiverged
from . import metrics  # noqa: F401  (cu.metrics in notebooks)
from .unet import LADDER, PRESETS, UNet, UNetConfig, build, count_params, get_preset

__all__ = ["CourseError", "DatasetNotFound", "CheckpointError", "TrainingDiverged", "UNet", "UNetConfig",
           "PRESETS", "LADDER", "build", "count_params", "get_preset", "show_source"]


def show_source(obj) -> None:
    """Display the real source of a class or function from the package (Markdown in Jupyter, text elsewhere)."""
    import inspect
    src = inspect.getsource(obj)
    try:
        from IPython.display import Markdown, display
        display(Markdown(f"```python\n{src}```"))
    except ImportError:
        print(src)
