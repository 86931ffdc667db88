"""The best U-Net a 2-core laptop trains in 30 minutes: ``python -m course_utils best-cpu``.

``BEST`` is ``optimized`` under the zero-terminal-SNR schedule with v-prediction, Adam with a cosine learning rate,
batch 128, EMA 0.999; docs/results.md says which measurements chose it. Resumable (``runs/specs/best-cpu-KEY/``); scored
like every shipped checkpoint (1,000 DDPM samples, seed 0) and exported as fp16 EMA weights with a manifest.
``--conditional`` trains notebook 10's class-conditional twin (``COND``) and adds its guidance sweep to the manifest.
"""
from __future__ import annotations

import json
from pathlib import Path

from course_utils.checkpoints import save_checkpoint
from course_utils.data import load
from course_utils.evaluation.evaluate import EvalSettings
from course_utils.evaluation.guidance import format_sweep, guidance_sweep
from course_utils.model.unet import count_params
from course_utils.paths import checkpoint_dir, relative
from course_utils.study.runspec import Recipe, RunSpec, metrics_of, score
from course_utils.study.ship import base_manifest
from course_utils.system import atomic_write_text
from course_utils.train import STEPS_PER_EPOCH, recompute_batchnorm

NAME = "best-cpu"
BEST = {"preset": "optimized", "steps": 3000, "lr": 1e-3, "lr_schedule": "cosine", "batch_size": 128, "ema": 0.999,
        "overrides": {"schedule": "linear", "zero_terminal_snr": True, "prediction": "v"}}
COND_NAME = "optimized_cond-final"
COND = {**BEST, "preset": "optimized_cond"}
SWEEP = {"n_per_class": 100, "sampler": "ddim", "steps": 50, "eta": 1.0}
N = 1000
MAX_MINUTES = 30
# how every shipped checkpoint is scored: n DDPM samples (all T steps), seed 0, BatchNorm statistics recomputed
SHIPPED_EVAL = EvalSettings(n=N, sampler="ddpm", steps=None, eta=0.0)


def spec_of(recipe: dict = BEST, name: str = NAME, folder: str | Path | None = None) -> RunSpec:
    """The run a recipe dict stands for (seed 0), named ``name``, training in ``folder`` if given."""
    r = Recipe(recipe["lr"], recipe["batch_size"], recipe["ema"], recipe.get("lr_schedule", "constant"))
    spec = RunSpec.of(recipe["preset"], recipe["steps"], 0, r, recipe.get("overrides"), label=name)
    return spec if folder is None else spec.moved(folder)


def train_best(recipe: dict = BEST, folder: str | Path | None = None, progress: bool = True, device=None,
               name: str = NAME):
    """Train (or resume, or reuse) the run ``name`` (best-cpu unless told) with ``recipe``; returns
    (EMA model, history, folder). A folder holding a run of another recipe is refused."""
    spec = spec_of(recipe, name, folder)
    spec.train_to(spec.steps, progress, device)
    return spec.load()[0].eval(), spec.history(), spec.folder


def _sweep(model, spec: RunSpec, how: dict, progress: bool) -> dict:
    """The guidance sweep of a class-conditional model, cached beside its run for the same checkpoint and settings."""
    cache = spec.folder / "guidance-sweep.json"
    stamp = spec.checkpoint.stat().st_mtime_ns
    saved = json.loads(cache.read_text()) if cache.is_file() else {}
    if saved.get("checkpoint_mtime_ns") == stamp and saved.get("how") == how:
        return saved["sweep"]
    guided = guidance_sweep(model, n_per_class=how["n_per_class"], progress=progress,
                            **{k: v for k, v in how.items() if k != "n_per_class"})
    guided["how"] = how
    atomic_write_text(cache, json.dumps({"checkpoint_mtime_ns": stamp, "how": how, "sweep": guided}))
    return guided


def ship_best(recipe: dict = BEST, n: int = N, checkpoints: str | Path | None = None,
              folder: str | Path | None = None, command: str = "python -m course_utils best-cpu",
              progress: bool = True, device=None, name: str = NAME, sweep: dict | None = None) -> dict:
    """Train the model ``name`` (best-cpu unless told), make BatchNorm statistics right for its EMA weights (if it
    has any), evaluate it on ``n`` samples and export it with its manifest. A class-conditional model is also
    swept over the guidance weights (``sweep``: guidance_sweep's arguments, default ``SWEEP``)."""
    model, hist, d = train_best(recipe, folder, progress, device, name=name)
    spec = spec_of(recipe, name, folder)
    point = score(spec, EvalSettings(n=n, sampler="ddpm", steps=None, eta=0.0), progress=progress, device=device)
    metrics, seconds = metrics_of(point), point["eval_seconds"]
    recompute_batchnorm(model, load("train"))  # a no-op for a GroupNorm network
    minutes = hist.seconds / 60
    ckdir = Path(checkpoints) if checkpoints else checkpoint_dir()
    dest = ckdir / f"{name}.safetensors"
    guided = _sweep(model, spec, {**SWEEP, **(sweep or {})}, progress) if model.config.num_classes else None
    save_checkpoint(dest, model, recipe["preset"], half=True, step=hist.steps, budget=name, seed=0, weights="ema",
                    manifest=dest.with_suffix(".json").name)
    m = {**base_manifest(recipe["preset"], command, config=model.config.to_dict()), "params": count_params(model),
         "recipe": recipe,
         "budget": f"at most {MAX_MINUTES} minutes of training on the machine below",
         "why": ("the best-cpu recipe with class labels (notebook 10)" if guided else
                 "chosen from the compute-aware study (results/study/cpu): see docs/results.md"),
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
            print(format_sweep(guided))
        if minutes > MAX_MINUTES:
            print(f"warning: training took {minutes:.1f} min, more than the {MAX_MINUTES} this model stands for "
                  "(was the machine busy with other work?)")
    return m
