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

The class-conditional model of notebook 10 is trained with the same recipe (``COND``: ``optimized_cond`` with the
same schedule, context dropout 0.1) by ``python -m course_utils best-cpu --conditional`` and shipped as
``checkpoints/optimized_cond-final.safetensors``; its manifest adds the guidance sweep (accuracy, FID and spread
per guidance weight, DDIM 50 steps, 100 samples per class).
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
COND_NAME = "optimized_cond-final"
COND = {**BEST, "preset": "optimized_cond"}
SWEEP = {"n_per_class": 100, "sampler": "ddim", "steps": 50, "eta": 1.0}
N = 1000
MAX_MINUTES = 30


def best_dir(name: str = NAME) -> Path:
    return runs_root() / name


def train_best(recipe: dict = BEST, folder: str | Path | None = None, progress: bool = True, device=None,
               name: str = NAME):
    """Train (or resume, or reuse) the run ``name`` (best-cpu unless told) with ``recipe``; returns
    (EMA model, history, folder)."""
    from course_utils.study.runs import train_preset
    check_ema(recipe["ema"])
    preset, steps = recipe["preset"], recipe["steps"]
    get_preset(preset)
    d = Path(folder) if folder else best_dir(name)
    ckpt = d / "model.safetensors"
    if ckpt.is_file():
        _, header = read_checkpoint(ckpt)
        meta = header.get("meta", {})
        if header.get("preset") != preset or meta.get("recipe") != recipe:
            raise CourseError(f"{ckpt} was trained with another recipe ({header.get('preset')}, {meta.get('recipe')}). "
                              f"Fix: move {d} away to train {recipe} from the start.")
        if meta.get("step", 0) >= steps and (d / "history.json").is_file():
            if progress:
                print(f"{name}: reusing {ckpt} ({meta['step']} steps)")
            model, _ = load_checkpoint(ckpt, preset, model=build(preset, **recipe.get("overrides", {})),
                                       use_ema=True)
            return model, load_history(d / "history.json"), d
        if progress:
            print(f"{name}: resuming {ckpt} from step {meta.get('step', 0)} of {steps}")
    budget = Budget(name, steps, steps, 64, 1, f"{steps} steps, cosine learning rate, EMA {recipe['ema']}")
    callbacks = [LRSchedule.cosine(total=steps)] if recipe.get("lr_schedule") == "cosine" else []
    _, hist = train_preset(preset, budget, out=d, steps=steps, ema_decay=recipe["ema"], resume=ckpt.is_file(),
                           progress=progress, device=device, lr=recipe["lr"], batch_size=recipe["batch_size"],
                           callbacks=callbacks, save_every=100, meta={"recipe": recipe},
                           overrides=recipe.get("overrides"))
    return hist.ema.cpu().eval(), hist, d


def ship_best(recipe: dict = BEST, n: int = N, checkpoints: str | Path | None = None,
              folder: str | Path | None = None, command: str = "python -m course_utils best-cpu",
              progress: bool = True, device=None, name: str = NAME, sweep: dict | None = None) -> dict:
    """Train the model ``name`` (best-cpu unless told), make BatchNorm statistics right for its EMA weights (if it
    has any), evaluate it on ``n`` samples and export it with its manifest. A class-conditional model is also
    swept over the guidance weights (``sweep``: guidance_sweep's arguments, default ``SWEEP``)."""
    from course_utils.data import load
    from course_utils.evaluation.evaluate import evaluate
    from course_utils.study.ablation import evaluate_run
    from course_utils.study.ship import base_manifest
    from course_utils.train import recompute_batchnorm
    model, hist, d = train_best(recipe, folder, progress, device, name=name)
    recompute_batchnorm(model, load("train"))  # a no-op for a GroupNorm network
    metrics, seconds = evaluate_run(model, d, n, 0, None, evaluate, name=f"eval-ema-n{n}-seed0.json")
    minutes = hist.seconds / 60
    ckdir = Path(checkpoints) if checkpoints else checkpoint_dir()
    dest = ckdir / f"{name}.safetensors"
    guided = None
    if model.config.num_classes:
        from course_utils.evaluation.guidance import guidance_sweep
        how = {**SWEEP, **(sweep or {})}
        cache = d / "guidance-sweep.json"
        stamp = (d / "model.safetensors").stat().st_mtime_ns if (d / "model.safetensors").is_file() else None
        saved = json.loads(cache.read_text()) if cache.is_file() else {}
        if stamp is not None and saved.get("checkpoint_mtime_ns") == stamp and saved.get("how") == how:
            guided = saved["sweep"]
        else:
            kwargs = {k: v for k, v in how.items() if k != "n_per_class"}
            guided = guidance_sweep(model, n_per_class=how["n_per_class"], progress=progress, **kwargs)
            guided["how"] = how
            if stamp is not None:
                atomic_write_text(cache, json.dumps({"checkpoint_mtime_ns": stamp, "how": how, "sweep": guided}))
    save_checkpoint(dest, model, recipe["preset"], half=True, step=hist.steps, budget=name, seed=0, weights="ema",
                    manifest=dest.with_suffix(".json").name)
    m = {**base_manifest(recipe["preset"], command, config=model.config.to_dict()), "params": count_params(model),
         "recipe": recipe,
         "budget": f"at most {MAX_MINUTES} minutes of training on the machine below",
         "why": ("the best-cpu recipe with class labels (notebook 10)" if guided else
                 "chosen from the compute-aware study (results/study/cpu): see the README"),
         "steps": hist.steps, "epochs": round(hist.steps * recipe["batch_size"] / (STEPS_PER_EPOCH * 128), 2),
         "seed": 0, "ema_decay": recipe["ema"], "wall_seconds": round(hist.seconds, 1),
         "train_minutes": round(minutes, 1), "final_loss": round(hist.final_loss(), 5),
         "metrics": {**metrics, "eval_seconds": round(seconds, 1)},
         "fid_to_floor": round(metrics["fid"] / metrics["fid_floor"], 2),
         "checkerboard_to_real": round(metrics["checkerboard"] / metrics["checkerboard_real"], 2),
         "run": relative(d), "file": dest.name, "bytes": dest.stat().st_size, "dtype": "float16", "weights": "ema"}
    if guided:
        m["guidance"] = guided
        m["guidance_command"] = (f"python -m course_utils evaluate {name} --sampler {guided['how']['sampler']} "
                                 f"--steps {guided['how']['steps']} --eta {guided['how']['eta']:g} -n {10 * guided['how']['n_per_class']}")
    atomic_write_text(dest.with_suffix(".json"), json.dumps(m, indent=1) + "\n")
    if progress:
        print(f"shipped {dest}: FID {metrics['fid']:.2f} vs floor {metrics['fid_floor']:.2f} at n={n} "
              f"(ratio {m['fid_to_floor']}) after {minutes:.1f} min of training")
        if guided:
            from course_utils.evaluation.guidance import format_sweep
            print(format_sweep(guided))
        if minutes > MAX_MINUTES:
            print(f"warning: training took {minutes:.1f} min, more than the {MAX_MINUTES} this model stands for "
                  "(was the machine busy with other work?)")
    return m
