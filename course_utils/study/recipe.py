"""Why longer training did not help: the EMA and BatchNorm's statistics, measured (``python -m course_utils
ema-check``).

A run is trained once with an EMA of its weights, checkpointed at several steps, and each checkpoint is evaluated
five ways: the raw weights with their running BatchNorm statistics; the raw weights with statistics recomputed
exactly (``course_utils.train.recompute_batchnorm``); the EMA weights with statistics averaged like the weights
(what training does now); the EMA weights with the raw model's latest statistics (what it did before: the EMA
copied BatchNorm's buffers from the raw model); and the EMA weights with recomputed statistics. Results go to
``results/recipe/<preset>-ema-batchnorm/`` (results.json, table.md); every evaluation is cached, with the run and
settings it was made with, and reused only for the same ones.
"""
from __future__ import annotations

import json
from pathlib import Path

from course_utils.checkpoints import read_checkpoint
from course_utils.data import load
from course_utils.evaluation.evaluate import EvalSettings, default_classifier, evaluate
from course_utils.paths import results_dir
from course_utils.study.runspec import Recipe, RunSpec, cached_point
from course_utils.system import atomic_write_text, hardware
from course_utils.train import recompute_batchnorm

WAYS = {
    "raw": "raw weights, their running BN statistics",
    "raw_recomputed": "raw weights, BN statistics recomputed",
    "ema": "EMA weights, BN statistics averaged too (now)",
    "ema_raw_stats": "EMA weights, the raw model's BN statistics (before)",
    "ema_recomputed": "EMA weights, BN statistics recomputed",
}


def _model(spec: RunSpec, way: str, data):
    model, _ = spec.load(use_ema=not way.startswith("raw"))
    if way == "ema_raw_stats":
        raw, _ = spec.load(use_ema=False)
        for b_ema, b_raw in zip(model.buffers(), raw.buffers()):
            b_ema.copy_(b_raw)
    if way.endswith("recomputed"):
        recompute_batchnorm(model, data)
    return model.eval()


def ema_dir(preset: str) -> Path:
    """``results/recipe/<preset>-ema-batchnorm``: where ema-check writes (results.json; table.md from reports)."""
    return results_dir() / "recipe" / f"{preset}-ema-batchnorm"


def _settings(n: int, seed: int) -> EvalSettings:
    """How each checkpoint is scored: ``n`` DDPM samples, seed ``seed``, the five ways of ``WAYS``."""
    return EvalSettings(n=n, sampler="ddpm", steps=None, eta=0.0, batchnorm="+".join(WAYS), seed=seed)


def ema_check(preset: str = "baseline", steps=(1000, 2000, 4000), ema: float = 0.999, n: int = 500, seed: int = 0,
              out: str | Path | None = None, progress: bool = True, device=None) -> dict:
    """Train ``preset`` once with an EMA of decay ``ema`` and score it the five ways at each of ``steps``. A row is
    reused only when it was made by the same run and settings (:func:`~course_utils.study.runspec.cached_point`)."""
    spec = RunSpec.of(preset, max(steps), seed, Recipe(ema=ema))
    settings = _settings(n, seed)
    out = Path(out) if out else ema_dir(preset)
    clf, data, rows = default_classifier(), load("train"), []
    for m in sorted(steps):
        cached = out / "runs" / f"step{m}.json"
        row = json.loads(cached.read_text()) if cached.is_file() else {}
        if cached_point(row, spec, m, settings) is not None:
            rows.append(row)
            continue
        ckpt = spec.train_to(m, progress, device)
        meta = read_checkpoint(ckpt)[1]["meta"]  # read once: the file holds every tensor too
        row = {"step": m, "seconds": meta["seconds"]}
        for way in WAYS:
            res = evaluate(_model(spec, way, data), n=n, seed=seed, classifier=clf)
            row[way] = {k: res[k] for k in ("fid", "fid_floor", "dark_fraction", "class_entropy", "confidence")}
            if progress:
                print(f"{preset} step {m}: {WAYS[way]:<52} FID {res['fid']:.2f}", flush=True)
        row = {**row, "spec": spec.to_dict(), "points": [{"step": m, "eval": settings.to_dict()}]}
        atomic_write_text(cached, json.dumps(row, indent=1))
        rows.append(row)
    result = {"preset": preset, "ema": ema, "n": n, "seed": seed, "ways": WAYS, "hardware": hardware(),
              "rows": [{k: v for k, v in r.items() if k not in ("spec", "points")} for r in rows]}
    atomic_write_text(out / "results.json", json.dumps(result, indent=1))
    return result
