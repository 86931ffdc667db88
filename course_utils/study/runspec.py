"""One training run, fully described: :class:`RunSpec` (a U-Net config, a training :class:`Recipe`, a length and a
seed), trained resumably (:meth:`RunSpec.train_to`) and evaluated (:meth:`RunSpec.evaluate`).

**The one cache rule.** A stored result is reused only when it was made by the same run *and* the same evaluation
settings: every record carries the spec and the evaluation settings it was made with, and :func:`same_settings`
compares them as objects (a field missing from an old file reads as its default). ``RunSpec.key()`` hashes every
setting that changes a run (the config fields that differ from the baseline's defaults, the recipe, the length and
the seed); the run's folder is named after it, so two different runs never share a checkpoint.

The preset name is resolved to a config once (``RunSpec.of``), at the command-line or notebook boundary; from then
on the config travels, not the name.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from course_utils.checkpoints import load_checkpoint, read_checkpoint
from course_utils.data import load
from course_utils.errors import CourseError
from course_utils.evaluation.evaluate import EvalSettings, evaluate
from course_utils.model.unet import UNet, UNetConfig, get_preset
from course_utils.paths import runs_root
from course_utils.system import atomic_write_text
from course_utils.train import History, LRSchedule, check_ema, recompute_batchnorm, train

LR_SCHEDULES = ("constant", "cosine")


def digest(obj) -> str:
    """A short, stable hash of a JSON-able object (key order does not matter)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Recipe:
    """How a network is trained: Adam at ``lr`` (constant, or decayed to 0 along a cosine over the run's own
    length), batches of ``batch_size``, an EMA of the weights with ``ema`` (None: none)."""

    lr: float = 1e-3
    batch_size: int = 128
    ema: float | None = 0.999
    lr_schedule: str = "constant"

    def __post_init__(self):
        if self.lr_schedule not in LR_SCHEDULES:
            raise CourseError(f"unknown learning-rate schedule {self.lr_schedule!r}; choose one of "
                              f"{', '.join(LR_SCHEDULES)}.")
        if not (isinstance(self.lr, (int, float)) and self.lr > 0):
            raise CourseError(f"the learning rate must be a number > 0, got {self.lr!r}.")
        if not (isinstance(self.batch_size, int) and self.batch_size > 0):
            raise CourseError(f"the batch size must be a whole number > 0, got {self.batch_size!r}.")
        check_ema(self.ema)

    def to_dict(self) -> dict:
        """As the study records have always written it: the schedule only when it is not constant."""
        d = {"lr": self.lr, "batch_size": self.batch_size, "ema": self.ema}
        if self.lr_schedule != "constant":
            d["lr_schedule"] = self.lr_schedule
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Recipe":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise CourseError(f"unknown recipe fields {sorted(unknown)}; known fields: {sorted(known)}.")
        return cls(**d)

    def lr_at(self, step: int, steps: int) -> float:
        """The learning rate at ``step`` of a run of ``steps`` steps."""
        if self.lr_schedule == "cosine":
            return self.lr * 0.5 * (1 + math.cos(math.pi * step / max(1, steps)))
        return self.lr


def config_delta(config: UNetConfig) -> dict:
    """The settings of ``config`` that differ from the defaults (the baseline), by their flat names (the diffusion
    settings beside the architecture fields, as every stored spec has them), as JSON values."""
    base = UNetConfig().flat()
    return {k: list(v) if isinstance(v, tuple) else v for k, v in config.flat().items() if v != base[k]}


@dataclass(frozen=True)
class RunSpec:
    """Everything that makes one training run what it is. ``label`` names it for people (folders, tables) and is
    not part of its identity."""

    config: UNetConfig
    steps: int
    seed: int = 0
    recipe: Recipe = field(default_factory=Recipe)
    label: str = field(default="run", compare=False)
    home: Path | None = field(default=None, compare=False)  # a folder of its own instead of runs/specs/LABEL-KEY
    preset: str | None = field(default=None, compare=False)  # the preset it was made from, for checkpoint headers

    def __post_init__(self):
        if not (isinstance(self.steps, int) and self.steps > 0):
            raise CourseError(f"a run's steps must be a whole number > 0, got {self.steps!r}.")

    @classmethod
    def of(cls, preset: str, steps: int, seed: int = 0, recipe: Recipe | None = None,
           overrides: dict | None = None, label: str | None = None) -> "RunSpec":
        """The spec of ``preset`` (with config ``overrides``): the one place a preset name becomes a config."""
        config = get_preset(preset).config.replace(**(overrides or {}))
        return cls(config, steps, seed, recipe or Recipe(), label or preset, preset=preset)

    def moved(self, folder: str | Path) -> "RunSpec":
        """The same run, training in ``folder``."""
        return dataclasses.replace(self, home=Path(folder))

    # --- identity ---------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"config": config_delta(self.config), "recipe": dataclasses.asdict(self.recipe),
                "steps": self.steps, "seed": self.seed}

    @classmethod
    def from_dict(cls, d: dict, label: str = "run") -> "RunSpec":
        config = UNetConfig.from_dict(d["config"])  # missing fields: the defaults
        return cls(config, d["steps"], d["seed"], Recipe.from_dict(d["recipe"]), label)

    def describe(self) -> str:
        r = self.recipe
        return (f"{self.label}: {self.steps:,} steps, seed {self.seed}, Adam lr {r.lr:g} ({r.lr_schedule}), batch "
                f"{r.batch_size}, EMA {r.ema}")

    def key(self) -> str:
        return digest(self.to_dict())

    @property
    def folder(self) -> Path:
        return Path(self.home) if self.home else runs_root() / "specs" / f"{self.label}-{self.key()}"

    @property
    def checkpoint(self) -> Path:
        return self.folder / "model.safetensors"

    # --- training ---------------------------------------------------------------------------------------
    def trained_steps(self) -> int:
        """How far the run's checkpoint has got (0 before it starts)."""
        if not self.checkpoint.is_file():
            return 0
        meta = read_checkpoint(self.checkpoint)[1]["meta"]
        if "spec" in meta and RunSpec.from_dict(meta["spec"]) != self:
            raise CourseError(f"{self.checkpoint} was trained with another recipe or network ({meta['spec']}), not "
                              f"{self.to_dict()}. Fix: move {self.folder} away to train this one from the start.")
        return int(meta.get("step", 0))

    def build(self) -> UNet:
        torch.manual_seed(self.seed)  # the initial weights depend on the seed only
        return UNet(self.config)

    def train_to(self, step: int, progress: bool = True, device=None, callbacks=()) -> Path:
        """Train (or resume) the run up to ``step`` of its ``steps``; the learning-rate schedule always spans the
        whole run. A resumed segment draws its batches and noise from streams seeded by the step it resumes at, so a
        run resumed at the same steps is reproduced exactly, while one resumed elsewhere (after an interruption)
        differs from one made in one go by training noise only. ``callbacks`` add to the training loop (e.g. a
        :class:`~course_utils.train.TimeLimit`). Returns the checkpoint."""
        if not 0 < step <= self.steps:
            raise CourseError(f"step {step} lies outside the run's 1..{self.steps} steps.")
        at = self.trained_steps()
        if at > step:
            raise CourseError(f"{self.checkpoint} is at step {at}, past step {step}: a run cannot go back. "
                              f"Fix: delete {self.folder} to train it again.")
        if at == step:
            return self.checkpoint
        if progress:
            print(f"{self.label} (seed {self.seed}): training to step {step} of {self.steps}", flush=True)
        r = self.recipe
        callbacks = list(callbacks) + ([LRSchedule(lambda s, _steps, base: r.lr_at(s, self.steps))]
                                       if r.lr_schedule != "constant" else [])
        train(self.build(), load("train"), step, lr=r.lr, batch_size=r.batch_size, seed=self.seed, device=device,
              progress=progress, ema_decay=r.ema, checkpoint=self.checkpoint, save_every=100, resume=at > 0,
              preset=self.preset, conditional=self.config.num_classes > 0, callbacks=callbacks,
              meta={"spec": self.to_dict(), "key": self.key()})
        return self.checkpoint

    def history(self) -> History:
        """The finished part of the run: its losses, seconds and steps, from its checkpoint."""
        meta = read_checkpoint(self.checkpoint)[1]["meta"]
        return History(losses=meta.get("losses", []), seconds=meta.get("seconds", 0.0), steps=meta["step"])

    def load(self, use_ema: bool = True):
        """(model, header) of the run's checkpoint."""
        return load_checkpoint(self.checkpoint, model=UNet(self.config), use_ema=use_ema)

    # --- evaluation -------------------------------------------------------------------------------------
    def evaluate(self, step: int, settings: EvalSettings, classifier=None, progress: bool = True,
                 device=None) -> dict:
        """Train to ``step`` if needed and score the EMA weights there: one point of the run's curve."""
        self.train_to(step, progress, device)
        model, header = self.load()
        meta = header["meta"]
        t0 = time.perf_counter()
        if settings.batchnorm == "recomputed":
            recompute_batchnorm(model, load("train"))  # a no-op for a GroupNorm network
        metrics = evaluate(model, n=settings.n, seed=settings.seed, classifier=classifier, **settings.sample_kwargs())
        losses = meta.get("losses", [])
        return {"step": step, "finished": step == self.steps, "lr_fraction": self.recipe.lr_at(step, self.steps) / self.recipe.lr,
                "train_seconds": meta.get("seconds"), "loss": statistics.fmean(losses[-50:]) if losses else None,
                "eval_seconds": time.perf_counter() - t0, "weights": header.get("weights"), **metrics}


def score(spec: RunSpec, settings: EvalSettings, step: int | None = None, classifier=None, progress: bool = True,
          device=None) -> dict:
    """``spec.evaluate`` at ``step`` (default: the end), cached in the run's folder (``evaluations.json``) under the
    one cache rule: reused only for the same run, step and settings."""
    step = step or spec.steps
    cache = spec.folder / "evaluations.json"
    record = json.loads(cache.read_text()) if cache.is_file() else {}
    hit = cached_point(record, spec, step, settings) if spec.trained_steps() >= step else None
    if hit is not None:
        return hit
    point = {**spec.evaluate(step, settings, classifier, progress, device), "eval": settings.to_dict()}
    old = record.get("points", []) if same_settings(record, spec) else []
    keep = [p for p in old if (p["step"], p["eval"]) != (step, point["eval"])]
    save_record(cache, {"spec": spec.to_dict(), "points": keep + [point]})
    return point


def metrics_of(point: dict) -> dict:
    """A point's measures of the samples alone, without the run's bookkeeping."""
    return {k: v for k, v in point.items() if k not in ("step", "finished", "lr_fraction", "train_seconds", "loss",
                                                       "eval_seconds", "weights", "eval")}


def same_settings(record: dict, spec: RunSpec) -> bool:
    """The one cache rule: ``record`` (a stored result) was made by ``spec``'s run."""
    return "spec" in record and RunSpec.from_dict(record["spec"]) == spec


def point_settings(point: dict) -> EvalSettings:
    return EvalSettings.from_dict(point["eval"])


def cached_point(record: dict, spec: RunSpec, step: int, settings: EvalSettings) -> dict | None:
    """The stored evaluation of ``spec`` at ``step`` under ``settings``, if ``record`` has one made by the same run."""
    if not same_settings(record, spec):
        return None
    return next((p for p in record.get("points", []) if p["step"] == step and point_settings(p) == settings), None)


def save_record(path: Path, record: dict) -> None:
    atomic_write_text(path, json.dumps(record, indent=1))
