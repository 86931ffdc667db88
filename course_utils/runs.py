"""Train a preset under a budget, or reuse the run a previous notebook already made.

Runs live in ``runs/<budget>/<preset>-seed<seed>/`` (ignored by git): the checkpoint, the loss
history and a sample grid. A notebook that compares its rung with the previous one therefore only
trains the new rung when the notebooks are run in order. ``retrain=True`` starts from scratch.
Shipped, longer-trained checkpoints live in ``checkpoints/`` (see :func:`load_shipped`).
"""
from __future__ import annotations

from pathlib import Path

import torch

from course_utils import distributed as dist
from course_utils.checkpoints import load_checkpoint, read_checkpoint
from course_utils.data import load
from course_utils.errors import CheckpointError, CourseError
from course_utils.model.blocks import resolve_factories, uses_registered
from course_utils.model.unet import PRESETS, UNet, UNetConfig, build, get_preset
from course_utils.paths import checkpoint_dir, find_home, runs_root
from course_utils.train import Budget, get_budget, load_history, save_history, train


def variant_name(preset: str, overrides: dict | None = None) -> str:
    """``preset`` with its config ``overrides`` as a short, folder-safe name: ``baseline+schedule=cosine``."""
    if not overrides:
        return preset
    def text(v):
        return "-".join(map(str, v)) if isinstance(v, (tuple, list)) else str(v)
    return preset + "+" + "+".join(f"{k}={text(v)}" for k, v in sorted(overrides.items()))


def nearest_preset(config) -> tuple[str, dict]:
    """(preset, overrides) that spell ``config``: the preset whose config differs in the fewest fields (the
    ladder first), and those fields."""
    want = config.flat()
    best = None
    for name, preset in PRESETS.items():
        have = preset.config.flat()
        diff = {k: v for k, v in want.items() if v != have[k]}
        if best is None or len(diff) < len(best[1]):
            best = (name, diff)
    return best


def as_variant(item) -> tuple[str, str, dict, object]:
    """(label, preset, overrides, model) for whatever a notebook may pass to compare or train_preset:

    - a preset name, ``"wide"``;
    - a preset with changed config fields, ``("wide", {"act": "silu"})``; a field "act", "norm", "up" or "down"
      may also be a module factory of your own (``{"act": MyGELU}``, see
      :func:`course_utils.model.blocks.register_block`);
    - a :class:`~course_utils.model.unet.UNetConfig`;
    - a U-Net you built, ``cu.build("optimized", act="silu")`` or ``cu.build("wide", act=MyGELU)``.

    ``model`` is the U-Net to train when it holds a block of your own (its runs are never reused: your code may
    have changed), else None (a fresh one is built from the preset, and a finished run of the same config is reused).
    """
    if isinstance(item, str):
        get_preset(item)
        return item, item, {}, None
    if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str) and isinstance(item[1], dict):
        get_preset(item[0])
        overrides = resolve_factories(item[1])
        return variant_name(item[0], overrides), item[0], overrides, None
    if isinstance(item, UNetConfig):
        preset, overrides = nearest_preset(item)
        return variant_name(preset, overrides), preset, overrides, None
    if isinstance(item, UNet):
        preset, overrides = nearest_preset(item.config)
        return variant_name(preset, overrides), preset, overrides, (item if uses_registered(item.config) else None)
    if isinstance(item, torch.nn.Module):
        raise CourseError(f"a {type(item).__name__} is not a course U-Net, so the course cannot tell its noise "
                          "schedule or budget. Fix: swap your module into a U-Net instead, e.g. "
                          "cu.build('wide', act=MyActivation) (or norm=, up=, down=).")
    raise CourseError(f"expected a preset name, (preset, {{field: value}}), a UNetConfig or a U-Net from cu.build(); "
                      f"got {item!r}. E.g. compare(['wide', ('wide', {{'act': 'silu'}}), cu.build('wide', act='silu')]).")


def run_dir(preset: str, budget: str, seed: int = 0, overrides: dict | None = None) -> Path:
    return runs_root() / budget / f"{variant_name(preset, overrides)}-seed{seed}"


def _cached(preset: str, budget: Budget, seed: int, steps: int, overrides: dict | None = None):
    d = run_dir(preset, budget.name, seed, overrides)
    ckpt, hist = d / "model.safetensors", d / "history.json"
    if not (ckpt.is_file() and hist.is_file()):
        return None
    try:
        _, header = read_checkpoint(ckpt)
        want = build(preset, **(overrides or {}))
        if header.get("config") != want.config.to_dict() or header["meta"].get("step") != steps:
            return None
        model, _ = load_checkpoint(ckpt, preset, model=want)
        return model, load_history(hist)
    except (CheckpointError, KeyError, ValueError):
        return None


def train_preset(preset, budget: str | Budget | None = None, seed: int = 0, retrain: bool = False,
                 progress: bool = True, steps: int | None = None, out: str | Path | None = None,
                 overrides: dict | None = None, **train_kwargs):
    """Return (model, history) for ``preset`` trained under ``budget`` (default: $COURSE_BUDGET).

    ``preset`` is a preset name, or anything :func:`as_variant` takes: (preset, {field: value}), a UNetConfig, or
    a U-Net built with ``cu.build`` (with a block of your own, if you like). ``overrides`` change fields of the
    preset's config (``{"schedule": "cosine"}``, ``{"act": "gelu"}``); such a variant trains in its own folder
    (``runs/BUDGET/baseline+schedule=cosine-seed0``). Reuses a finished run of the same preset, config, budget and
    seed unless ``retrain`` is set (never one of a network with a block of your own). ``train_kwargs`` (``device``,
    ``ema_decay``, ``resume``, ``save_every``, ``lr``, ``batch_size``, ``callbacks``, ``meta``, ...) go to
    :func:`course_utils.train.train`.
    """
    _, preset, fields, given = as_variant(preset)
    overrides = {**fields, **resolve_factories(overrides or {})}
    budget = budget if isinstance(budget, Budget) else get_budget(budget)
    torch.manual_seed(seed)
    model = given if given is not None and not overrides.keys() - fields.keys() else build(preset, **overrides)
    steps = budget.steps_for(model.config) if steps is None else steps
    name = variant_name(preset, overrides)
    if uses_registered(model.config):
        retrain = True  # the student's code may have changed since the last run: never reuse it
    if out is None and not retrain and not train_kwargs.get("resume"):
        hit = _cached(preset, budget, seed, steps, overrides)
        if hit is not None:
            if progress:
                print(f"{name}: reusing the {budget.name}-budget run in {run_dir(preset, budget.name, seed, overrides)} "
                      f"({steps} steps, {hit[1].seconds:.0f} s); set RETRAIN = True to train again.")
            return hit
    d = Path(out) if out is not None else run_dir(preset, budget.name, seed, overrides)
    train_kwargs.setdefault("conditional", model.config.num_classes > 0)
    history = train(model, load("train"), steps, seed=seed, progress=progress, preset=preset,
                    checkpoint=d / "model.safetensors", meta={"budget": budget.name, **train_kwargs.pop("meta", {})},
                    **train_kwargs)
    if dist.is_main():
        save_history(d / "history.json", history)
    return model.cpu(), history


def shipped_path(name: str) -> Path:
    return checkpoint_dir() / f"{name}.safetensors"


def load_shipped(name: str, preset: str | None = None):
    """The shipped checkpoint ``checkpoints/<name>.safetensors`` as (model, header), or None if absent."""
    p = shipped_path(name)
    if not p.is_file():
        return None
    return load_checkpoint(p, preset)


def find_checkpoint(variant: str, checkpoint: str | Path | None = None) -> Path:
    """``checkpoint`` if given, else the shipped ``checkpoints/VARIANT.safetensors``, else the seed-0 run of
    the largest budget (``runs/{full,quick,ci}/VARIANT-seed0/model.safetensors``)."""
    if checkpoint:
        p = Path(checkpoint)
        if not p.is_file():
            raise CourseError(f"--checkpoint {p} does not exist. Fix: give the path of a .safetensors file.")
        return p
    candidates = [shipped_path(variant)] + [run_dir(variant, b, 0) / "model.safetensors" for b in ("full", "quick", "ci")]
    for c in candidates:
        if c.is_file():
            return c
    raise CourseError(f"no trained {variant!r} found; looked in:\n  " + "\n  ".join(str(c) for c in candidates)
                      + f"\nFix: python -m course_utils train {variant}   (or pass --checkpoint PATH).")


def shipped_names() -> list[str]:
    """The names of the shipped U-Net checkpoints (``checkpoints/*.safetensors`` except the classifier)."""
    home = find_home()
    folder = home / "checkpoints" if home else None
    if folder is None or not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob("*.safetensors") if p.stem != "classifier")


def resolve(name: str, checkpoint: str | Path | None = None) -> tuple[Path, str | None]:
    """(checkpoint file, preset to check it against) for a command's NAME: a preset (its ``checkpoint``, shipped
    checkpoint or latest run, see :func:`find_checkpoint`) or the name of a shipped checkpoint such as
    ``optimized-final`` (the preset it holds is read from the file)."""
    if name in PRESETS:
        return find_checkpoint(name, checkpoint), name
    if shipped_path(name).is_file() and name != "classifier":
        return (find_checkpoint(name, checkpoint) if checkpoint else shipped_path(name)), None
    try:
        get_preset(name)
    except CourseError as e:
        names = shipped_names()
        raise CourseError(f"{e} Shipped checkpoints: {', '.join(names) if names else 'none found'}.") from None
    raise AssertionError("unreachable")
