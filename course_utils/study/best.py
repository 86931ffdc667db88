"""The best U-Net a 2-core laptop can train in 30 minutes, chosen by measurement: ``python -m course_utils best-cpu``.

The choice comes from measurements. The compute-aware study (``results/study/cpu``): the narrow presets
(``baseline``, ``upsample``) stop improving after a few thousand steps, while the wide ones are still falling at the
study's budget, so half an hour goes to a wide network. Longer training alone did not pay: ``optimized`` for 4,000
steps with a cosine learning rate (27 min) scored Fashion-FID 98.5 against ``optimized-final``'s 94.9 after 2,340
steps (``results/recipe/optimized-4000-cosine``). The noise schedule did: under the original schedule x_T is not
noise (notebook 09), and the schedule comparison (``results/schedules/baseline``) measured the zero-terminal-SNR
schedule with v-prediction at about half the original's FID on the baseline at equal steps. So the best model is
``optimized`` with that schedule, trained with the study's recipe (Adam, batch 128, EMA 0.999) and the learning
rate decayed to 0 along a cosine; ``BEST`` holds it.

Resumable: the run trains in ``runs/best-cpu/`` with a checkpoint every 100 steps; an interrupted command
continues from it. The result is evaluated like every shipped checkpoint (``evaluate``: Fashion-FID of 1,000 DDPM
samples against 1,000 test images, seed 0) and exported as fp16 EMA weights to
``checkpoints/best-cpu.safetensors`` with a manifest.
"""
from __future__ import annotations

import json
from pathlib import Path

from course_utils.checkpoints import atomic_write_text, load_checkpoint, read_checkpoint, save_checkpoint
from course_utils.errors import CourseError
from course_utils.model.unet import build, count_params, get_preset
from course_utils.paths import checkpoint_dir, relative, runs_root
from course_utils.train import STEPS_PER_EPOCH, Budget, LRSchedule, check_ema, load_history

NAME = "best-cpu"
BEST = {"preset": "optimized", "steps": 3000, "lr": 1e-3, "lr_schedule": "cosine", "batch_size": 128, "ema": 0.999,
        "overrides": {"schedule": "linear", "zero_terminal_snr": True, "prediction": "v"}}
N = 1000
MAX_MINUTES = 30


def best_dir() -> Path:
    return runs_root() / NAME


def train_best(recipe: dict = BEST, folder: str | Path | None = None, progress: bool = True, device=None):
    """Train (or resume, or reuse) the best-cpu run; returns (EMA model, history, folder)."""
    from course_utils.study.runs import train_preset
    check_ema(recipe["ema"])
    preset, steps = recipe["preset"], recipe["steps"]
    get_preset(preset)
    d = Path(folder) if folder else best_dir()
    ckpt = d / "model.safetensors"
    if ckpt.is_file():
        _, header = read_checkpoint(ckpt)
        meta = header.get("meta", {})
        if header.get("preset") != preset or meta.get("recipe") != recipe:
            raise CourseError(f"{ckpt} was trained with another recipe ({header.get('preset')}, {meta.get('recipe')}). "
                              f"Fix: move {d} away to train {recipe} from the start.")
        if meta.get("step", 0) >= steps and (d / "history.json").is_file():
            if progress:
                print(f"{NAME}: reusing {ckpt} ({meta['step']} steps)")
            model, _ = load_checkpoint(ckpt, preset, model=build(preset, **recipe.get("overrides", {})),
                                       use_ema=True)
            return model, load_history(d / "history.json"), d
        if progress:
            print(f"{NAME}: resuming {ckpt} from step {meta.get('step', 0)} of {steps}")
    budget = Budget(NAME, steps, steps, 64, 1, f"{steps} steps, cosine learning rate, EMA {recipe['ema']}")
    callbacks = [LRSchedule.cosine(total=steps)] if recipe.get("lr_schedule") == "cosine" else []
    _, hist = train_preset(preset, budget, out=d, steps=steps, ema_decay=recipe["ema"], resume=ckpt.is_file(),
                           progress=progress, device=device, lr=recipe["lr"], batch_size=recipe["batch_size"],
                           callbacks=callbacks, save_every=100, meta={"recipe": recipe},
                           overrides=recipe.get("overrides"))
    return hist.ema.cpu().eval(), hist, d


def ship_best(recipe: dict = BEST, n: int = N, checkpoints: str | Path | None = None,
              folder: str | Path | None = None, command: str = "python -m course_utils best-cpu",
              progress: bool = True, device=None) -> dict:
    """Train the best-cpu model, make BatchNorm statistics right for its EMA weights (if it has any), evaluate it
    on ``n`` samples and export it with its manifest."""
    from course_utils.data import load
    from course_utils.evaluation.evaluate import evaluate
    from course_utils.study.ablation import evaluate_run
    from course_utils.study.ship import base_manifest
    from course_utils.train import recompute_batchnorm
    model, hist, d = train_best(recipe, folder, progress, device)
    recompute_batchnorm(model, load("train"))  # a no-op for a GroupNorm network
    metrics, seconds = evaluate_run(model, d, n, 0, None, evaluate, name=f"eval-ema-n{n}-seed0.json")
    minutes = hist.seconds / 60
    ckdir = Path(checkpoints) if checkpoints else checkpoint_dir()
    dest = ckdir / f"{NAME}.safetensors"
    save_checkpoint(dest, model, recipe["preset"], half=True, step=hist.steps, budget=NAME, seed=0, weights="ema",
                    manifest=dest.with_suffix(".json").name)
    m = {**base_manifest(recipe["preset"], command), "config": model.config.to_dict(), "params": count_params(model),
         "recipe": recipe,
         "budget": f"at most {MAX_MINUTES} minutes of training on the machine below",
         "why": "chosen from the compute-aware study (results/study/cpu): see the README",
         "steps": hist.steps, "epochs": round(hist.steps * recipe["batch_size"] / (STEPS_PER_EPOCH * 128), 2),
         "seed": 0, "ema_decay": recipe["ema"], "wall_seconds": round(hist.seconds, 1),
         "train_minutes": round(minutes, 1), "final_loss": round(hist.final_loss(), 5),
         "metrics": {**metrics, "eval_seconds": round(seconds, 1)},
         "fid_to_floor": round(metrics["fid"] / metrics["fid_floor"], 2),
         "checkerboard_to_real": round(metrics["checkerboard"] / metrics["checkerboard_real"], 2),
         "run": relative(d), "file": dest.name, "bytes": dest.stat().st_size, "dtype": "float16", "weights": "ema"}
    atomic_write_text(dest.with_suffix(".json"), json.dumps(m, indent=1) + "\n")
    if progress:
        print(f"shipped {dest}: FID {metrics['fid']:.2f} vs floor {metrics['fid_floor']:.2f} at n={n} "
              f"(ratio {m['fid_to_floor']}) after {minutes:.1f} min of training")
        if minutes > MAX_MINUTES:
            print(f"warning: training took {minutes:.1f} min, more than the {MAX_MINUTES} this model stands for "
                  "(was the machine busy with other work?)")
    return m
