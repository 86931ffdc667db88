"""course_utils: the only home of the course's model, data, training, metric and widget code.

The package is layered; imports run one way, from the top of this list to the bottom:

* faces: ``cli/`` (the command line), ``widgets/`` (the notebooks' explorers), ``notebook`` (helpers that keep
  the notebooks short);
* ``study/``: runs under a budget, the ablation and the compute-aware study, ``ship``, ``bench``;
* ``evaluation/`` (the classifier, FID/KID, image metrics, ``evaluate``) and ``lessons/`` (one module per notebook:
  the measurements and tiny-tensor experiments that notebook shows);
* the core a student meets first: ``train``, ``checkpoints``, ``plotting``;
* ``model/`` (``blocks``, ``unet``) and ``diffusion``;
* ``data``, ``paths`` and ``errors``.

Notebooks import from here and show the real source of a block with :func:`show_source`.
"""
from course_utils.errors import CheckpointError, CourseError, DatasetNotFound, TrainingDiverged
from course_utils.model.unet import LADDER, PRESETS, UNet, UNetConfig, build, count_params, get_preset

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
