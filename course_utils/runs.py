"""Train a preset under a budget, or reuse the run a previous notebook already made.

Runs live in ``runs/<budget>/<preset>-seed<seed>/`` (ignored by git): the checkpoint, the loss
history and a sample grid. A notebook that compares its rung with the previous one therefore only
trains the new rung when the notebooks are run in order. ``retrain=True`` starts from scratch.
Shipped, longer-trained checkpoints live in ``checkpoints/`` (see :func:`load_shipped`).
"""
from __future__ import annotations

from pathlib import Path

import torch

from .checkpoints import load_checkpoint, read_checkpoint
from .data import REPO_ROOT, load
from .errors import CheckpointError
from .train import Budget, get_budget, load_history, save_history, train
from .unet import build, get_preset

CHECKPOINT_DIR = REPO_ROOT / "checkpoints"


def runs_root() -> Path:
    import os
    return Path(os.environ.get("COURSE_RUNS_DIR", REPO_ROOT / "runs"))


def run_dir(preset: str, budget: str, seed: int = 0) -> Path:
    return runs_root() / budget / f"{preset}-seed{seed}"


def _cached(preset: str, budget: Budget, seed: int, steps: int):
    d = run_dir(preset, budget.name, seed)
    ckpt, hist = d / "model.safetensors", d / "history.json"
    if not (ckpt.is_file() and hist.is_file()):
        return None
    try:
        _, header = read_checkpoint(ckpt)
        if header.get("config") != get_preset(preset).config.to_dict() or header["meta"].get("step") != steps:
            return None
        model, _ = load_checkpoint(ckpt, preset)
        return model, load_history(hist)
    except (CheckpointError, KeyError, ValueError):
        return None


def train_preset(preset: str, budget: str | Budget | None = None, seed: int = 0, retrain: bool = False,
                 progress: bool = True, device=None, steps: int | None = None, out: str | Path | None = None,
                 ema_decay: float | None = None, resume: bool = False, save_every: int = 200):
    """Return (model, history) for ``preset`` trained under ``budget`` (default: $COURSE_BUDGET).

    Reuses a finished run of the same preset, config, budget and seed unless ``retrain`` is set.
    """
    get_preset(preset)
    budget = budget if isinstance(budget, Budget) else get_budget(budget)
    steps = budget.steps_for(preset) if steps is None else steps
    if out is None and not retrain and not resume:
        hit = _cached(preset, budget, seed, steps)
        if hit is not None:
            if progress:
                print(f"{preset}: reusing the {budget.name}-budget run in {run_dir(preset, budget.name, seed)} "
                      f"({steps} steps, {hit[1].seconds:.0f} s); set RETRAIN = True to train again.")
            return hit
    d = Path(out) if out is not None else run_dir(preset, budget.name, seed)
    torch.manual_seed(seed)
    model = build(preset)
    history = train(model, load("train"), steps, seed=seed, device=device, progress=progress, preset=preset,
                    checkpoint=d / "model.safetensors", resume=resume, ema_decay=ema_decay, save_every=save_every,
                    meta={"budget": budget.name})
    save_history(d / "history.json", history)
    return model.cpu(), history


def shipped_path(name: str) -> Path:
    return CHECKPOINT_DIR / f"{name}.safetensors"


def load_shipped(name: str, preset: str | None = None):
    """The shipped checkpoint ``checkpoints/<name>.safetensors`` as (model, header), or None if absent."""
    p = shipped_path(name)
    if not p.is_file():
        return None
    return load_checkpoint(p, preset)
