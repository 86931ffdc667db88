"""DDIM against DDPM on one trained model: Fashion-FID and images/s for several numbers of steps K
(``python -m course_utils compare-samplers NAME``).

Every configuration is evaluated on the same n samples' worth of seeds and cached as its own JSON file with the
model it was made from (a digest of the checkpoint's bytes) and its settings, so an interrupted comparison continues
where it stopped and another checkpoint of the same name is evaluated anew. Written to ``results/samplers/<NAME>/results.json``;
``course_utils.reports.write_samplers`` draws table.md and fid_vs_steps.png from it.
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from course_utils.checkpoints import load_checkpoint
from course_utils.diffusion import describe_sampler
from course_utils.evaluation.evaluate import EvalSettings, default_classifier, evaluate
from course_utils.paths import results_dir
from course_utils.runs import resolve
from course_utils.system import atomic_write_text, hardware

STEPS = (10, 25, 50, 150)
ETAS = (0.0,)


def samplers_dir(name: str) -> Path:
    return results_dir() / "samplers" / name


def configurations(steps=STEPS, etas=ETAS) -> list[dict]:
    """DDPM (all T steps) first, then DDIM for every K and eta."""
    return [{"sampler": "ddpm", "steps": None, "eta": 0.0}] + [
        {"sampler": "ddim", "steps": k, "eta": float(e)} for e in etas for k in steps]


def label(c: dict) -> str:
    return describe_sampler(c["sampler"], c["steps"], c["eta"])


def model_key(path: str | Path) -> str:
    """What a cached row was made from: a digest of the checkpoint file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]


def _row(model, c: dict, n: int, seed: int, clf, made_from: str, f: Path) -> dict:
    """One configuration's evaluation, cached in ``f`` under the one cache rule: reused only for the same model
    (checkpoint bytes) and the same settings."""
    settings = EvalSettings(n=n, sampler=c["sampler"], steps=c["steps"], eta=c["eta"], batchnorm="running", seed=seed)
    if f.is_file():
        row = json.loads(f.read_text())
        if row.get("model") == made_from and row.get("eval") == settings.to_dict():
            return row
    t0 = time.perf_counter()
    kwargs = {"sampler": c["sampler"]} if c["sampler"] == "ddpm" else dict(c)
    row = {**c, "label": label(c), **evaluate(model, n=n, seed=seed, classifier=clf, **kwargs),
           "seconds": time.perf_counter() - t0, "model": made_from, "eval": settings.to_dict()}
    atomic_write_text(f, json.dumps(row, indent=1))
    return row


def compare_samplers(name: str, checkpoint: str | Path | None = None, n: int = 1000, steps=STEPS, etas=ETAS,
                     seed: int = 0, out: str | Path | None = None, progress: bool = True) -> dict:
    """Evaluate the model ``name`` (a preset or a shipped checkpoint) with DDPM and with DDIM at each K and eta."""
    path, preset = resolve(name, checkpoint)
    model, header = load_checkpoint(path, preset)
    made_from = model_key(path)
    out = Path(out) if out else samplers_dir(name)
    clf = default_classifier()
    rows = []
    for c in configurations(steps, etas):
        f = out / "runs" / f"{c['sampler']}-k{c['steps'] or 'T'}-eta{c['eta']:g}-n{n}-seed{seed}.json"
        rows.append(_row(model, c, n, seed, clf, made_from, f))
        if progress:
            print(f"{rows[-1]['label']:<28} FID {rows[-1]['fid']:7.2f} (floor {rows[-1]['fid_floor']:.2f})  "
                  f"{rows[-1]['images_per_s']:7.1f} images/s", flush=True)
    ddpm = rows[0]
    for r in rows:
        r["fid_vs_ddpm"] = r["fid"] / ddpm["fid"]
        r["speedup_vs_ddpm"] = r["images_per_s"] / ddpm["images_per_s"]
    result = {"name": name, "checkpoint": str(path), "train_steps": header.get("meta", {}).get("step"), "n": n,
              "seed": seed, "hardware": hardware(), "rows": rows}
    atomic_write_text(out / "results.json", json.dumps(result, indent=1))
    return result
