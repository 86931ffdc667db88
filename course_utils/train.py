"""Training: budgets, device choice, the DDPM training loop with progress bars, EMA and checkpoints."""
from __future__ import annotations

import copy
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from .checkpoints import atomic_write_text, load_training_state, save_checkpoint
from .data import Batches, FashionData
from .diffusion import Schedule
from .errors import CourseError, TrainingDiverged

STEPS_PER_EPOCH = 60000 // 128  # 468 full batches of 128


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
        from .unet import UNetConfig, get_preset
        cfg = preset_or_config if isinstance(preset_or_config, UNetConfig) else get_preset(preset_or_config).config
        return self.steps_wide if cfg.channels[0] >= 64 else self.steps_small


BUDGETS = {
    "ci": Budget("ci", 6, 3, 8, 2, "seconds per notebook: proves every cell runs, samples are noise"),
    "quick": Budget("quick", 1100, 120, 16, 3, "a few minutes per notebook on 2 CPU cores"),
    "full": Budget("full", 3 * STEPS_PER_EPOCH, 5 * STEPS_PER_EPOCH, 64, 5,
                   "the original course's length: 3 epochs (narrow presets), 5 epochs (wide presets)"),
}


def pick_device(prefer: str | None = None) -> torch.device:
    """cuda if available, then Apple's mps, else cpu. ``prefer`` (or $COURSE_DEVICE) forces one."""
    prefer = prefer or os.environ.get("COURSE_DEVICE")
    if prefer:
        if prefer.startswith("cuda") and not torch.cuda.is_available():
            raise CourseError(f"device {prefer!r} was asked for but CUDA is not available here. Fix: unset "
                              "COURSE_DEVICE or use 'cpu'.")
        return torch.device(prefer)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


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
        import difflib
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
                   p_uncond: float = 0.1) -> torch.Tensor:
    """MSE between the true noise and the model's prediction at a random step per image."""
    n = x0.shape[0]
    t = torch.randint(0, schedule.T, (n,), generator=gen, device="cpu").to(x0.device)
    noise = torch.randn(x0.shape, generator=gen, device="cpu").to(x0.device)
    x_t = schedule.q_sample(x0, t, noise)
    if labels is not None:
        keep = (torch.rand(n, generator=gen) >= p_uncond).to(x0.device)
        pred = model(x_t, t, labels, keep)
    else:
        pred = model(x_t, t)
    return F.mse_loss(pred, noise)


@torch.no_grad()
def ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    for pe, pm in zip(ema.parameters(), model.parameters()):
        pe.lerp_(pm, 1 - decay)
    for be, bm in zip(ema.buffers(), model.buffers()):
        be.copy_(bm)


def train(model: torch.nn.Module, data: FashionData, steps: int, *, lr: float = 1e-3, batch_size: int = 128,
          seed: int = 0, device: torch.device | str | None = None, progress: bool = True,
          ema_decay: float | None = None, checkpoint: str | Path | None = None, save_every: int = 200,
          resume: bool = False, preset: str | None = None, conditional: bool = False,
          history: History | None = None, meta: dict | None = None) -> History:
    """Train ``model`` to predict noise for ``steps`` optimizer steps; returns the loss history.

    With ``checkpoint`` the model (and optimizer, EMA) are saved there atomically every ``save_every``
    steps and at the end; ``resume=True`` continues from that file. A NaN or infinite loss stops
    training with :class:`TrainingDiverged`; the last checkpoint stays as it was.
    """
    if steps < 0:
        raise CourseError(f"steps must be >= 0, got {steps}.")
    check_ema(ema_decay)
    device = torch.device(device) if device is not None else pick_device()
    model.to(device).train()
    if data.images.device != device and device.type == "cuda":
        data = data.to(device)  # the whole set fits on a GPU: no per-batch copies
    schedule = Schedule(T=getattr(model.config, "T", 150))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    ema = copy.deepcopy(model).eval() if ema_decay else None
    if ema is not None:
        ema.requires_grad_(False)
    history = history or History()
    start_step = 0
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    batches = Batches(data, batch_size, flip=True, seed=seed)
    if resume:
        if checkpoint is None or not Path(checkpoint).is_file():
            raise CourseError(f"--resume needs an existing checkpoint, but {checkpoint} does not exist. "
                              "Fix: train without --resume first.")
        header = load_training_state(checkpoint, model, opt, ema)
        m = header.get("meta", {})
        start_step = int(m.get("step", 0))
        history.losses = list(m.get("losses", []))[:start_step]
        history.seconds = float(m.get("seconds", 0.0))
        if start_step >= steps:
            print(f"{checkpoint} already holds {start_step} steps (asked for {steps}); nothing to do.")
        gen = torch.Generator().manual_seed(seed + 7919 * start_step)  # a fresh but reproducible stream
        batches = Batches(data, batch_size, flip=True, seed=seed + 7919 * start_step)
    meta = dict(meta or {})

    def save(step):
        if checkpoint is None:
            return
        save_checkpoint(checkpoint, model, preset, ema=ema, optimizer=opt, step=step, losses=history.losses,
                        seconds=round(history.seconds, 2), seed=seed, **meta)

    it = range(start_step, steps)
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(it, desc=f"training {preset or ''}".strip(), initial=start_step, total=steps, leave=True)
        it = bar
    t0 = time.perf_counter()
    for step in it:
        x, y = next(batches)
        x = x.to(device, non_blocking=True)
        loss = diffusion_loss(model, x, schedule, gen, labels=y.to(device) if conditional else None)
        value = loss.item()
        if not math.isfinite(value):
            raise TrainingDiverged(f"the loss became {value} at step {step + 1}. Training stopped"
                                   + (f"; the last good checkpoint {checkpoint} is kept" if checkpoint else "")
                                   + ". Fix: lower the learning rate (e.g. lr=1e-4) or check the inputs for NaNs.")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if ema is not None:
            ema_update(ema, model, min(ema_decay, (1 + step) / (10 + step)))
        history.losses.append(value)
        history.steps = step + 1
        if bar is not None and (step % 10 == 0 or step == steps - 1):
            bar.set_postfix(loss=f"{history.final_loss(20):.4f}")
        if checkpoint is not None and (step + 1) % save_every == 0 and step + 1 < steps:
            history.seconds += time.perf_counter() - t0
            t0 = time.perf_counter()
            save(step + 1)
    history.seconds += time.perf_counter() - t0
    history.steps = max(history.steps, start_step)
    save(history.steps)
    model.eval()
    history.ema = ema  # sample from history.ema when training with ema_decay
    return history


def load_history(path: str | Path) -> History:
    """The loss history written by :func:`save_history`."""
    import json
    h = json.loads(Path(path).read_text())
    return History(losses=h["losses"], seconds=h["seconds"], steps=h["steps"])


def save_history(path: str | Path, history: History) -> None:
    import json
    atomic_write_text(path, json.dumps({"losses": history.losses, "seconds": history.seconds,
                                        "steps": history.steps}))
