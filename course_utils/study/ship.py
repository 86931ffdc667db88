"""Regenerate the shipped checkpoints: ``python -m course_utils ship``.

The final optimized model (``FINAL_STEPS`` steps with an EMA, exported as ``checkpoints/optimized-final``), the
ablation of every ladder and leave-one-out preset at ``LADDER_STEPS`` steps (``results/ablation/ladder/``), and the
seed-0 ladder runs exported as ``checkpoints/<preset>``. Every step reuses or resumes finished runs, so an interrupted
``ship`` continues where it stopped. The classifier has its own command (``train-classifier``).
"""
from __future__ import annotations

import datetime as _dt
import json
import time
from pathlib import Path

import torch

from course_utils.checkpoints import load_checkpoint, save_checkpoint
from course_utils.errors import CourseError
from course_utils.evaluation.evaluate import EvalSettings
from course_utils.model.unet import ABLATED, LADDER, count_params, get_preset
from course_utils.paths import checkpoint_dir, relative
from course_utils.study.ablation import ablate, ablation_dir, ablation_spec
from course_utils.study.runspec import Recipe, RunSpec, metrics_of, score
from course_utils.system import atomic_write_text, git_commit, hardware
from course_utils.train import STEPS_PER_EPOCH, check_ema

LADDER_STEPS = 250      # every ladder and leave-one-out preset, every seed
SEEDS = 2
ABLATION_N = 256        # samples per ablation evaluation (FID floor printed beside)
FINAL_STEPS = 5 * STEPS_PER_EPOCH  # 2,340: the original course's 5 epochs of 128 images
FINAL_EMA = 0.999
FINAL_N = 1000
FINAL_NAME = "optimized-final"
BATCH_SIZE = 128


def final_spec(steps: int = FINAL_STEPS, ema: float = FINAL_EMA, folder: str | Path | None = None) -> RunSpec:
    """The final optimized model's run: ``steps`` steps with an EMA of decay ``ema``, seed 0."""
    spec = RunSpec.of("optimized", steps, 0, Recipe(ema=ema), label=FINAL_NAME)
    return spec if folder is None else spec.moved(folder)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def export(src: Path, dest: Path, preset: str, manifest: dict, use_ema: bool = False) -> dict:
    """Write ``src``'s weights (or its EMA) as fp16, weights only, to ``dest`` plus ``dest`` with .json."""
    model, header = load_checkpoint(src, preset, use_ema=use_ema)
    if use_ema and header.get("weights") != "ema":
        raise CourseError(f"{src} has no EMA weights; train it with --ema (e.g. --ema {FINAL_EMA}).")
    meta = header.get("meta", {})
    save_checkpoint(dest, model, preset, half=True, step=meta.get("step"), budget=meta.get("budget"),
                    seed=meta.get("seed"), weights=header.get("weights"), manifest=dest.with_suffix(".json").name)
    manifest = {**manifest, "file": dest.name, "bytes": dest.stat().st_size, "dtype": "float16",
                "weights": header.get("weights")}
    atomic_write_text(dest.with_suffix(".json"), json.dumps(manifest, indent=1) + "\n")
    return manifest


def base_manifest(preset: str, command: str, config: dict | None = None) -> dict:
    """What every shipped manifest starts with: the preset, the command, commit, date, the config (the preset's,
    unless ``config`` gives the one actually trained), batch size and hardware."""
    return {"preset": preset, "command": command, "git_commit": git_commit(), "date": _now(),
            "config": config if config is not None else get_preset(preset).config.to_dict(), "batch_size": BATCH_SIZE,
            "hardware": {**hardware(), "device": "cuda" if torch.cuda.is_available() else "cpu"}}


def _trained(spec: RunSpec) -> dict:
    """What a manifest records of a finished run: its steps, training time and final loss."""
    h = spec.history()
    return {"steps": h.steps, "seed": spec.seed, "wall_seconds": round(h.seconds, 1), "final_loss": round(h.final_loss(), 5)}


def ship_ladder(steps: int = LADDER_STEPS, seeds: int = SEEDS, n: int = ABLATION_N,
                checkpoints: str | Path | None = None, results: str | Path | None = None,
                command: str = "python -m course_utils ship", progress: bool = True,
                presets: list[str] | None = None, after_ablation=None) -> dict:
    """The ablation over every preset (or ``presets``), then the seed-0 ladder runs exported to ``checkpoints``;
    ``after_ablation(result)`` is called when the ablation is done (the command line draws its table there)."""
    out = Path(results) if results else ablation_dir("ladder")
    names = presets or list(ABLATED)
    res = ablate(seeds=seeds, presets=names, n=n, out=out, progress=progress, steps=steps)
    if after_ablation is not None:
        after_ablation(res)
    ckdir = Path(checkpoints) if checkpoints else checkpoint_dir()
    manifests = {}
    for p in [p for p in LADDER if p in names]:
        run = next(r for r in res["runs"] if r["preset"] == p and r["seed"] == 0)
        spec = ablation_spec(p, steps, 0)
        metrics = {k: v for k, v in run.items() if k not in ("preset", "kind", "seed", "params", "steps")}
        m = {**base_manifest(p, command), "params": run["params"],
             "budget": f"every preset trained for the same {steps} steps", **_trained(spec), "metrics": metrics,
             "ablation": relative(out)}
        manifests[p] = export(spec.checkpoint, ckdir / f"{p}.safetensors", p, m)
        if progress:
            print(f"shipped {ckdir / (p + '.safetensors')} ({manifests[p]['bytes'] / 1e6:.1f} MB)")
    return {"ablation": res, "manifests": manifests}


def ship_final(steps: int = FINAL_STEPS, ema: float = FINAL_EMA, n: int = FINAL_N,
               checkpoints: str | Path | None = None, folder: str | Path | None = None,
               command: str = "python -m course_utils ship", progress: bool = True) -> dict:
    """Train (or resume, or reuse) the final optimized model (EMA), evaluate it on ``n`` samples and export it."""
    spec = final_spec(steps, ema, folder)
    point = score(spec, EvalSettings(n=n, sampler="ddpm", steps=None, eta=0.0, batchnorm="running"), progress=progress)
    metrics = {**metrics_of(point), "eval_seconds": round(point["eval_seconds"], 1)}
    trained = _trained(spec)
    ckdir = Path(checkpoints) if checkpoints else checkpoint_dir()
    m = {**base_manifest("optimized", command), "params": count_params(spec.load()[0]),
         "budget": f"{trained['steps']} steps = {trained['steps'] / STEPS_PER_EPOCH:.1f} epochs of 60,000 images",
         **trained, "ema_decay": ema, "metrics": metrics,
         "fid_to_floor": round(metrics["fid"] / metrics["fid_floor"], 2),
         "checkerboard_to_real": round(metrics["checkerboard"] / metrics["checkerboard_real"], 2)}
    manifest = export(spec.checkpoint, ckdir / f"{FINAL_NAME}.safetensors", "optimized", m, use_ema=True)
    if progress:
        print(f"shipped {ckdir / (FINAL_NAME + '.safetensors')}: FID {metrics['fid']:.2f} vs floor "
              f"{metrics['fid_floor']:.2f} at n={n} (ratio {m['fid_to_floor']}), checkerboard "
              f"{m['checkerboard_to_real']}x real")
    return manifest


def ship(checkpoints: str | Path | None = None, results: str | Path | None = None,
         command: str = "python -m course_utils ship", progress: bool = True, after_ablation=None, **settings) -> dict:
    """Everything: the ablation and ladder checkpoints, then the final model. Records the wall time. ``settings``:
    steps, seeds, n (the ablation), final_steps, final_n, ema (the final model), skip_final, skip_ladder, presets."""
    known = {"steps": LADDER_STEPS, "seeds": SEEDS, "n": ABLATION_N, "final_steps": FINAL_STEPS, "final_n": FINAL_N,
             "ema": FINAL_EMA, "skip_final": False, "skip_ladder": False, "presets": None}
    unknown = set(settings) - set(known)
    if unknown:
        raise CourseError(f"unknown ship settings {sorted(unknown)}; known: {sorted(known)}.")
    o = {**known, **settings}
    steps, seeds, n, final_steps, final_n, ema = (o[k] for k in ("steps", "seeds", "n", "final_steps", "final_n", "ema"))
    skip_final, skip_ladder, presets = o["skip_final"], o["skip_ladder"], o["presets"]
    check_ema(ema)
    t0 = time.perf_counter()
    out: dict = {}
    if not skip_final:
        out["final"] = ship_final(final_steps, ema, final_n, checkpoints, None, command, progress)
    if not skip_ladder:
        out["ladder"] = ship_ladder(steps, seeds, n, checkpoints, results, command, progress, presets,
                                    after_ablation)
    out["seconds"] = time.perf_counter() - t0
    total = sum(p.stat().st_size for p in Path(checkpoints or checkpoint_dir()).glob("*.safetensors"))
    out["checkpoint_bytes"] = total
    if progress:
        print(f"done in {out['seconds'] / 60:.1f} min; checkpoints/ holds {total / 1e6:.1f} MB of weights")
    return out


def shipped_final_path() -> Path:
    """``checkpoints/optimized-final.safetensors``: the final model's fp16 EMA weights."""
    return checkpoint_dir() / f"{FINAL_NAME}.safetensors"
