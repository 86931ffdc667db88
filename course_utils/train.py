"""Training: budgets and the training loop (:class:`Trainer`). The loss is a pluggable step (the DDPM loss,
:class:`DiffusionLoss`, by default; the metric classifier trains with a classification loss), and the extras are
callbacks: the EMA of the weights, resuming a checkpoint, checkpoints, the progress bar, and optional LR schedules,
gradient clipping, autocast and ``torch.compile``. :func:`train` is the DDPM loop with all of these as keywords."""
from __future__ import annotations

import contextlib
import difflib
import json
import math
import os
import time
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel
from tqdm.auto import tqdm

from course_utils import distributed as dist
from course_utils.checkpoints import load_training_state, save_checkpoint
from course_utils.data import Batches, FashionData
from course_utils.diffusion import Schedule, check_schedule_fits
from course_utils.errors import CourseError, TrainingDiverged
from course_utils.model.unet import UNetConfig, get_preset
from course_utils.system import atomic_write_text, pick_device

STEPS_PER_EPOCH = 60000 // 128  # 468 full batches of 128
SAVE_EVERY = 100  # steps between checkpoints, everywhere (train, train_preset, the command line)


@dataclass(frozen=True)
class Budget:
    """How long to train. ``steps_small`` is for the narrow presets (like the baseline), ``steps_wide`` for
    the wide ones (channels >= 64), which cost about 6x more per step on a CPU."""

    name: str
    steps_small: int
    steps_wide: int
    samples: int          # images drawn for figures
    bench_repeats: int
    description: str

    def steps_for(self, preset_or_config) -> int:
        cfg = preset_or_config if isinstance(preset_or_config, UNetConfig) else get_preset(preset_or_config).config
        return self.steps_wide if cfg.channels[0] >= 64 else self.steps_small


BUDGETS = {
    "ci": Budget("ci", 6, 3, 8, 2, "seconds per notebook: proves every cell runs, samples are noise"),
    # quick: 64 samples, so that a comparison's checkerboard score is not one of a handful of images
    "quick": Budget("quick", 1100, 120, 64, 3, "a few minutes per notebook on 2 CPU cores"),
    "full": Budget("full", 3 * STEPS_PER_EPOCH, 5 * STEPS_PER_EPOCH, 64, 5,
                   "the original course's length: 3 epochs (narrow presets), 5 epochs (wide presets)"),
}


def get_budget(name: str | None = None) -> Budget:
    """The named budget, else $COURSE_BUDGET, else 'full' on a GPU and 'quick' on a CPU."""
    source = "argument"
    if name is None:
        name = os.environ.get("COURSE_BUDGET")
        source = "COURSE_BUDGET"
    if not name:
        return BUDGETS["full" if pick_device().type == "cuda" else "quick"]
    key = str(name).strip().lower()
    if key not in BUDGETS:
        close = difflib.get_close_matches(key, BUDGETS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        where = f"COURSE_BUDGET={name!r}" if source == "COURSE_BUDGET" else f"budget {name!r}"
        raise CourseError(f"unknown {where}.{hint} Use one of: ci (seconds, proves the cells run), quick (minutes "
                          "on a CPU), full (the original course's length).")
    return BUDGETS[key]


@dataclass
class History:
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0
    steps: int = 0
    ema: torch.nn.Module | None = None

    def final_loss(self, window: int = 50) -> float:
        tail = self.losses[-window:]
        return sum(tail) / max(len(tail), 1)


def check_ema(decay: float | None) -> None:
    """An EMA decay must lie strictly between 0 and 1 (None: no EMA)."""
    if decay is not None and not (isinstance(decay, (int, float)) and 0 < decay < 1):
        raise CourseError(f"the EMA decay must lie strictly between 0 and 1 (e.g. 0.999), got {decay!r}. "
                          "Fix: --ema 0.999, or leave --ema out for no EMA.")


def diffusion_loss(model, x0, schedule: Schedule, gen: torch.Generator | None = None, labels=None,
                   p_uncond: float = 0.1, config=None) -> torch.Tensor:
    """MSE between the model's output and its target at a random step per image: the true noise
    (``prediction="eps"``, the default) or v = sqrt(abar_t) eps - sqrt(1 - abar_t) x0 (``prediction="v"``), as the
    model's config says. ``schedule`` must be the kind the model is configured for (its T may differ). ``config``
    is the U-Net's config when ``model`` is a wrapper without one (DistributedDataParallel, torch.compile)."""
    cfg = config if config is not None else getattr(model, "config", None)
    check_schedule_fits(schedule, cfg)
    prediction = getattr(cfg, "prediction", "eps")
    n = x0.shape[0]
    t = torch.randint(0, schedule.T, (n,), generator=gen, device="cpu").to(x0.device)
    noise = torch.randn(x0.shape, generator=gen, device="cpu").to(x0.device)
    x_t = schedule.q_sample(x0, t, noise)
    if labels is not None:
        keep = (torch.rand(n, generator=gen) >= p_uncond).to(x0.device)
        pred = model(x_t, t, labels, keep)
    else:
        pred = model(x_t, t)
    return F.mse_loss(pred, noise if prediction == "eps" else schedule.target(x0, noise, t, prediction))


class Callback:
    """A hook into :class:`Trainer`, in the style of fast.ai's miniai: override any of the methods below.

    Each receives the trainer, whose attributes (``model``, ``opt``, ``step``, ``x``, ``loss``, ``history``, ...)
    it may read and change. Callbacks run in the order of their ``order`` attribute (lower first). The course's
    own: :class:`Resume` (continue a checkpoint), :class:`EMA`, :class:`Checkpointer`, :class:`ProgressBar`, an LR
    schedule (:class:`LRSchedule`, or any torch scheduler through :class:`TorchScheduler`), gradient clipping
    (:class:`GradClip`), mixed precision (:class:`Autocast`), :class:`Compile` and a wall-clock :class:`TimeLimit`.
    """

    order = 0

    def before_fit(self, tr: "Trainer") -> None: ...
    def before_step(self, tr: "Trainer") -> None: ...
    def after_backward(self, tr: "Trainer") -> None: ...
    def after_step(self, tr: "Trainer") -> None: ...
    def after_fit(self, tr: "Trainer") -> None: ...


def _ema_average(decay: float):
    """The EMA rule for ``AveragedModel``: decay min(decay, (1 + n) / (10 + n)) after n updates (a warm-up, so early
    weights do not linger), applied to parameters *and* float buffers such as BatchNorm's running statistics."""
    def average(averaged: torch.Tensor, current: torch.Tensor, num_averaged: torch.Tensor) -> torch.Tensor:
        if not averaged.is_floating_point():  # counters such as num_batches_tracked: take the model's
            return current
        n = int(num_averaged)
        return averaged.lerp(current, 1 - min(decay, (1 + n) / (10 + n)))
    return average


class EMA(Callback):
    """An exponential moving average of the weights (``torch.optim.swa_utils.AveragedModel``), updated after every
    step. BatchNorm's running statistics are averaged with the same rule (``use_buffers=True``), so the averaged
    weights meet statistics of the same average rather than the raw model's latest ones. ``tr.ema`` is the
    averaged copy of the model (a plain module, as saved in checkpoints under ``ema.``)."""

    order = 0

    def __init__(self, decay: float):
        check_ema(decay)
        self.decay = decay
        self.averaged = None

    def before_fit(self, tr):
        if self.averaged is not None:  # built already (to load a checkpoint's EMA into it on resume)
            return
        self.averaged = AveragedModel(tr.model, avg_fn=_ema_average(self.decay), use_buffers=True)
        self.averaged.module.eval().requires_grad_(False)
        tr.ema = self.averaged.module

    def after_step(self, tr):
        self.averaged.update_parameters(tr.model)

    def resumed(self, step: int) -> None:
        """After ``tr.ema`` was loaded from a checkpoint of ``step`` steps: continue the warm-up from there."""
        self.averaged.n_averaged.fill_(step)


class LRSchedule(Callback):
    """Set the learning rate before every step: ``lr_at(step, steps, base_lr)`` gives it. ``cosine(warmup)`` is a
    linear warm-up then a cosine decay to 0."""

    order = -10

    def __init__(self, lr_at):
        self.lr_at = lr_at

    @staticmethod
    def cosine(warmup: int = 0, total: int | None = None):
        """Linear warm-up over ``warmup`` steps, then a cosine decay to 0 at ``total`` steps (default: the run's
        length; give ``total`` when a run is trained in segments that resume one another)."""
        def lr_at(step, steps, base):
            steps = total or steps
            if step < warmup:
                return base * (step + 1) / warmup
            return base * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))
        return LRSchedule(lr_at)

    def before_step(self, tr):
        for group in tr.opt.param_groups:
            group["lr"] = self.lr_at(tr.step, tr.steps, tr.lr)


class GradClip(Callback):
    """Clip the gradients' global norm to ``max_norm`` before the optimizer step."""

    def __init__(self, max_norm: float = 1.0):
        self.max_norm = max_norm

    def after_backward(self, tr):
        torch.nn.utils.clip_grad_norm_(tr.model.parameters(), self.max_norm)


class Autocast(Callback):
    """Mixed precision: the forward pass runs under ``torch.autocast`` (bf16 by default) on the model's device."""

    def __init__(self, dtype: torch.dtype = torch.bfloat16):
        self.dtype = dtype

    def before_fit(self, tr):
        tr.forward_context = lambda: torch.autocast(tr.device.type, dtype=self.dtype)


class Compile(Callback):
    """Run the forward pass through ``torch.compile`` (worth it on a GPU): wraps ``tr.net`` at the start."""

    order = -50

    def before_fit(self, tr):
        tr.net = torch.compile(tr.net)


class TimeLimit(Callback):
    """Stop training once the run's training time (resumed segments included) reaches ``seconds``: the step under
    way finishes, the checkpoint is written at it, and ``reached`` says whether the limit cut the run short."""

    order = 30

    def __init__(self, seconds: float):
        if not seconds > 0:
            raise CourseError(f"a time limit must be > 0 seconds, got {seconds!r}.")
        self.seconds, self.reached = float(seconds), False

    def after_step(self, tr):
        if tr.history.seconds + time.perf_counter() - tr._t0 >= self.seconds and tr.step + 1 < tr.steps:
            self.reached = tr.stop = True


class Resume(Callback):
    """Continue the run saved in the checkpoint ``path``: restore the model, its EMA (when an :class:`EMA` callback
    is given) and the optimizer, the loss history and the training time so far, and start at the saved step.

    The random streams of batches and noise are reseeded at that step (:meth:`Trainer.seek`), as ``train(...,
    resume=True)`` always did. ``start`` is the step the run continued from, once training began."""

    order = -100  # first: every other callback sees the restored run

    def __init__(self, path: str | Path | None):
        if path is None or not Path(path).is_file():
            raise CourseError(f"--resume needs an existing checkpoint, but {path} does not exist. "
                              "Fix: train without --resume first.")
        self.path = Path(path)
        self.start: int | None = None

    def before_fit(self, tr):
        ema = next((cb for cb in tr.callbacks if isinstance(cb, EMA)), None)
        if ema is not None:
            ema.before_fit(tr)  # build the averaged copy so the checkpoint's EMA weights can be loaded into it
        header = load_training_state(self.path, tr.model, tr.opt, tr.ema)
        meta = header.get("meta", {})
        self.start = start = int(meta.get("step", 0))
        tr.history.losses = list(meta.get("losses", []))[:start]
        tr.history.seconds = float(meta.get("seconds", 0.0))
        if start >= tr.steps:
            print(f"{self.path} already holds {start} steps (asked for {tr.steps}); nothing to do.")
        tr.seek(start)
        if ema is not None:
            ema.resumed(start)


class Checkpointer(Callback):
    """Write the model, its EMA and the optimizer atomically every ``every`` steps and at the end."""

    order = 10

    def __init__(self, path: str | Path, every: int, preset: str | None, seed: int, meta: dict):
        self.path, self.every, self.preset, self.seed, self.meta = Path(path), every, preset, seed, meta

    def save(self, tr, step: int) -> None:
        save_checkpoint(self.path, tr.model, self.preset, ema=tr.ema, optimizer=tr.opt, step=step,
                        losses=tr.history.losses, seconds=round(tr.history.seconds, 2), seed=self.seed, **self.meta)

    def after_step(self, tr):
        done = tr.step + 1
        if done % self.every == 0 and done < tr.steps:
            tr.clock()
            self.save(tr, done)

    def after_fit(self, tr):
        self.save(tr, tr.history.steps)


class ProgressBar(Callback):
    """A tqdm bar labelled ``desc`` with the recent mean loss."""

    order = 20

    def __init__(self, desc: str = "training", leave: bool = True):
        self.desc, self.leave = desc, leave

    def before_fit(self, tr):
        self.bar = tqdm(total=tr.steps, initial=tr.start_step, desc=self.desc, leave=self.leave)

    def after_step(self, tr):
        self.bar.update(1)
        if tr.step % 10 == 0 or tr.step == tr.steps - 1:
            self.bar.set_postfix(loss=f"{tr.history.final_loss(20):.4f}")

    def after_fit(self, tr):
        self.bar.close()


class TorchScheduler(Callback):
    """A ``torch.optim.lr_scheduler`` built on the trainer's optimizer when training starts (``make(opt)``) and
    stepped after every optimizer step, e.g. ``TorchScheduler(lambda opt: OneCycleLR(opt, 2e-3, total_steps=n))``.
    (For a run that is resumed, prefer :class:`LRSchedule`: its rate depends on the step alone.)"""

    def __init__(self, make):
        self.make, self.scheduler = make, None

    def before_fit(self, tr):
        self.scheduler = self.make(tr.opt)

    def after_step(self, tr):
        self.scheduler.step()


class DiffusionLoss:
    """The default step of :class:`Trainer`: the DDPM loss (:func:`diffusion_loss`) of the trainer's network on the
    batch's images, with the batch's labels when ``conditional`` (each dropped with probability ``p_uncond``, for
    classifier-free guidance). The schedule is the one the model's config asks for."""

    def __init__(self, conditional: bool = False, p_uncond: float = 0.1):
        self.conditional, self.p_uncond = conditional, p_uncond
        self.schedule: Schedule | None = None

    def __call__(self, tr: "Trainer", batch) -> torch.Tensor:
        x, y = batch
        config = getattr(tr.model, "config", None)
        if self.schedule is None:
            self.schedule = Schedule.from_config(config)
        return diffusion_loss(tr.net, x, self.schedule, tr.gen, labels=y if self.conditional else None,
                              p_uncond=self.p_uncond, config=config)


class Trainer:
    """A training loop with hooks: draw a batch, compute the loss, backward, optimizer step (Adam).

    The loss is a step, ``loss_fn(trainer, batch) -> loss`` with ``batch = (images, labels)`` on the trainer's
    device: the DDPM loss (:class:`DiffusionLoss`) by default, a classification loss for the metric classifier
    (:func:`course_utils.evaluation.classifier.train_classifier`). Everything else (EMA, resume, checkpoints, the
    progress bar, LR schedules, clipping, autocast, compile) is a :class:`Callback`, so a new trick is a new callback,
    not an edit of this loop.
    """

    def __init__(self, model, data: FashionData, steps: int, *, lr: float = 1e-3, batch_size: int = 128,
                 seed: int = 0, device=None, loss_fn=None, callbacks: list[Callback] = ()):
        if not isinstance(steps, int) or steps < 0:
            raise CourseError(f"steps must be a whole number >= 0, got {steps!r}.")
        if loss_fn is not None and not callable(loss_fn):
            raise CourseError(f"loss_fn must be a function (trainer, batch) -> loss, got {loss_fn!r}. Fix: leave it "
                              "out for the DDPM loss, or pass e.g. lambda tr, batch: F.cross_entropy(tr.net(batch[0]), "
                              "batch[1]).")
        bad = [cb for cb in callbacks if not isinstance(cb, Callback)]
        if bad:
            raise CourseError(f"callbacks must be Callback objects, got {bad[0]!r}. Fix: subclass "
                              "course_utils.train.Callback and override its hooks.")
        self.rank, self.world = dist.rank(), dist.world_size()
        if self.world > 1 and batch_size % self.world:
            raise CourseError(f"batch_size {batch_size} must split evenly over {self.world} processes. Fix: a batch "
                              f"size divisible by {self.world}.")
        self.device = dist.init(device) if self.world > 1 else (torch.device(device) if device is not None
                                                                  else pick_device())
        self.model = model.to(self.device).train()
        # what the forward pass calls: the model, wrapped for several processes (and compiled by Compile)
        self.net = self.model
        if dist.active():
            self.net = DistributedDataParallel(self.model, device_ids=[self.device] if self.device.type == "cuda" else None)
        if data.images.device != self.device and self.device.type == "cuda":
            data = data.to(self.device)  # the whole set fits on a GPU: no per-batch copies
        self.data, self.steps, self.lr, self.batch_size, self.seed = data, steps, lr, batch_size, seed
        self.loss_fn = loss_fn if loss_fn is not None else DiffusionLoss()
        self.opt = torch.optim.Adam(model.parameters(), lr=lr)
        self.callbacks = sorted(callbacks, key=lambda cb: cb.order)
        self.history = History()
        self.ema: torch.nn.Module | None = None
        self.forward_context = contextlib.nullcontext
        self.start_step = self.step = 0
        self.stop = False  # a callback sets it to end training after the current step (TimeLimit)
        self.seek(0)
        self._t0 = time.perf_counter()

    def seek(self, step: int) -> None:
        """Start (or continue) at ``step``: the random streams of batches and noise depend on it, reproducibly."""
        self.start_step = step
        torch.manual_seed(self.seed)
        offset = self.seed + 7919 * step
        self.gen = torch.Generator().manual_seed(offset + 1_000_003 * self.rank)  # each process its own noise
        self.batches = Batches(self.data, self.batch_size, flip=True, seed=offset, rank=self.rank, world=self.world)

    def clock(self) -> None:
        """Add the time since the last call to the history (checkpoints record the training time so far)."""
        now = time.perf_counter()
        self.history.seconds += now - self._t0
        self._t0 = now

    def _run(self, event: str) -> None:
        for cb in self.callbacks:
            getattr(cb, event)(self)

    def one_step(self) -> None:
        x, y = next(self.batches)
        self.x = x.to(self.device, non_blocking=True)
        self.y = y.to(self.device)
        self._run("before_step")
        with self.forward_context():
            self.loss = self.loss_fn(self, (self.x, self.y))
        value = self.loss.item()
        if self.world > 1:  # the loss of the whole batch, the same number in every process
            value = dist.mean(value, self.device)
        if not math.isfinite(value):
            saved = [cb.path for cb in self.callbacks if isinstance(cb, Checkpointer)]
            raise TrainingDiverged(f"the loss became {value} at step {self.step + 1}. Training stopped"
                                   + (f"; the last good checkpoint {saved[0]} is kept" if saved else "")
                                   + ". Fix: lower the learning rate (e.g. lr=1e-4) or check the inputs for NaNs.")
        self.opt.zero_grad(set_to_none=True)
        self.loss.backward()
        self._run("after_backward")
        self.opt.step()
        self.history.losses.append(value)
        self.history.steps = self.step + 1
        self._run("after_step")

    def fit(self) -> History:
        self._run("before_fit")
        self._t0 = time.perf_counter()
        for self.step in range(self.start_step, self.steps):
            self.one_step()
            if self.stop:
                break
        self.clock()
        self.history.steps = max(self.history.steps, self.start_step)
        self._run("after_fit")
        self.model.eval()
        self.history.ema = self.ema
        return self.history


@dataclass
class TrainOptions:
    """Everything :func:`train` takes besides the model, the data and the steps; each field is also a keyword of
    :func:`train` (``train(model, data, 500, lr=1e-3, ema_decay=0.999)``)."""

    lr: float = 1e-3
    batch_size: int = 128
    seed: int = 0
    device: torch.device | str | None = None
    progress: bool = True                 # a progress bar (rank 0 only)
    ema_decay: float | None = None        # an EMA of the weights (EMA callback)
    checkpoint: str | Path | None = None  # saved there atomically every save_every steps and at the end
    save_every: int = SAVE_EVERY
    resume: bool = False                  # continue from checkpoint (Resume callback)
    preset: str | None = None             # the name recorded in the checkpoint and shown by the progress bar
    conditional: bool = False             # train with class labels (classifier-free guidance)
    history: History | None = None        # a history to append to
    meta: dict | None = None              # extra metadata for the checkpoint
    callbacks: list[Callback] = ()
    compile: bool = False                 # torch.compile the forward pass (Compile callback)

    def __post_init__(self):
        check_ema(self.ema_decay)
        if self.checkpoint is not None and (not isinstance(self.save_every, int) or self.save_every < 1):
            raise CourseError(f"save_every must be a whole number >= 1, got {self.save_every!r}. Fix: e.g. "
                              f"save_every={SAVE_EVERY}.")

    @classmethod
    def of(cls, options: "TrainOptions | None", keywords: dict) -> "TrainOptions":
        """``options`` (default: the defaults) with ``keywords`` replacing fields; an unknown keyword is named."""
        names = [f.name for f in fields(cls)]
        unknown = [k for k in keywords if k not in names]
        if unknown:
            close = difflib.get_close_matches(unknown[0], names, n=1) or [n for n in names if n.startswith(unknown[0])]
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise TypeError(f"train() got an unknown keyword {unknown[0]!r}.{hint} Its keywords are: "
                            f"{', '.join(names)}.")
        return replace(options or cls(), **keywords)

    def callback_list(self) -> list[Callback]:
        """The given callbacks, then those the options ask for: Resume, EMA, Compile, Checkpointer, ProgressBar."""
        cbs = list(self.callbacks)
        if self.resume:
            cbs.append(Resume(self.checkpoint))
        if self.ema_decay:
            cbs.append(EMA(self.ema_decay))
        if self.compile:
            cbs.append(Compile())
        if self.checkpoint is not None and dist.is_main():
            cbs.append(Checkpointer(self.checkpoint, self.save_every, self.preset, self.seed, dict(self.meta or {})))
        if self.progress and dist.is_main():
            cbs.append(ProgressBar(f"training {self.preset or ''}".strip()))
        return cbs


def train(model: torch.nn.Module, data: FashionData, steps: int, options: TrainOptions | None = None,
          **keywords) -> History:
    """Train ``model`` to predict noise for ``steps`` optimizer steps; returns the loss history.

    The keywords are the fields of :class:`TrainOptions` (or pass ``options``): ``lr``, ``batch_size``, ``seed``,
    ``device``, ``progress``, ``ema_decay``, ``checkpoint``, ``save_every``, ``resume``, ``preset``,
    ``conditional``, ``history``, ``meta``, ``callbacks``, ``compile``. With ``checkpoint`` the model (and optimizer,
    EMA) are saved there atomically every ``save_every`` steps and at the end; ``resume=True`` continues from that
    file (the :class:`Resume` callback). A NaN or infinite loss stops training with :class:`TrainingDiverged`; the
    last checkpoint stays as it was. ``callbacks`` add behaviour (an LR schedule, gradient clipping, autocast: see
    :class:`Callback`). ``compile`` runs the forward pass through ``torch.compile`` (worth it on a GPU). Under
    torchrun every process trains its shard of each batch (:mod:`course_utils.distributed`) and only rank 0 writes
    the checkpoint and draws the progress bar.
    """
    o = TrainOptions.of(options, keywords)
    tr = Trainer(model, data, steps, lr=o.lr, batch_size=o.batch_size, seed=o.seed, device=o.device,
                 loss_fn=DiffusionLoss(conditional=o.conditional), callbacks=o.callback_list())
    if o.history is not None:
        tr.history = o.history
    return tr.fit()


@torch.no_grad()
def recompute_batchnorm(model: torch.nn.Module, data: FashionData, batches: int | None = None, batch_size: int = 128,
                        seed: int = 0) -> torch.nn.Module:
    """Replace every BatchNorm's running statistics by their exact average over ``batches`` fresh training batches
    (noised at random steps, as in training) seen by the model's *current* weights. Returns the model in eval mode.
    ``batches`` defaults to 50; the test suite sets ``COURSE_BN_BATCHES=4`` (conftest.py), where the models are
    trained for a few steps and only the code path matters.

    Running statistics are a moving average over the last few batches, gathered while the weights were still
    changing; weights that were never trained on directly (an EMA of the weights) never produced statistics of
    their own at all. ``torch.optim.swa_utils.update_bn`` does the same for models that take one input."""
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    if not bns:
        return model.eval()
    batches = int(os.environ.get("COURSE_BN_BATCHES", "50")) if batches is None else batches
    momenta = [bn.momentum for bn in bns]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # a cumulative average over every batch below
    device = next(model.parameters()).device
    schedule = Schedule.from_config(getattr(model, "config", None))
    gen = torch.Generator().manual_seed(seed)
    it = Batches(data, batch_size, flip=True, seed=seed)
    model.train()
    for _ in range(batches):
        x = next(it)[0].to(device)
        t = torch.randint(0, schedule.T, (len(x),), generator=gen).to(device)
        model(schedule.q_sample(x, t, torch.randn(x.shape, generator=gen).to(device)), t)
    for bn, m in zip(bns, momenta):
        bn.momentum = m
    return model.eval()


def load_history(path: str | Path) -> History:
    """The loss history written by :func:`save_history`."""
    h = json.loads(Path(path).read_text())
    return History(losses=h["losses"], seconds=h["seconds"], steps=h["steps"])


def save_history(path: str | Path, history: History) -> None:
    """Write ``history`` (losses, seconds, steps) as JSON, atomically."""
    atomic_write_text(path, json.dumps({"losses": history.losses, "seconds": history.seconds,
                                        "steps": history.steps}))
