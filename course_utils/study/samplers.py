"""DDIM against DDPM on one trained model: Fashion-FID and images/s for several numbers of steps K
(``python -m course_utils compare-samplers NAME``).

Every configuration is evaluated on the same n samples' worth of seeds and cached as its own JSON file with the
model it was made from (a digest of the checkpoint's bytes) and its settings, so an interrupted comparison continues
where it stopped and another checkpoint of the same name is evaluated anew. Written to ``results/samplers/<NAME>/``: ``results.json``,
``table.md`` and ``fid_vs_steps.png``.
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from course_utils import plotting
from course_utils.checkpoints import load_checkpoint
from course_utils.diffusion import describe_sampler
from course_utils.evaluation.evaluate import default_classifier, evaluate
from course_utils.paths import results_dir
from course_utils.study.runs import resolve
from course_utils.study.runspec import EvalSettings
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
    atomic_write_text(out / "table.md", markdown(result))
    plotting.save(plot(result), out / "fid_vs_steps.png")
    return result


def markdown(result: dict) -> str:
    head = ("| sampler | Fashion-FID | × DDPM's FID | images/s | × DDPM's speed | dark fraction | class entropy |\n"
            "|---|---:|---:|---:|---:|---:|---:|\n")
    body = "".join(f"| {r['label']} | {r['fid']:.2f} | {r['fid_vs_ddpm']:.2f} | {r['images_per_s']:.1f} | "
                   f"{r['speedup_vs_ddpm']:.1f} | {r['dark_fraction']:.3f} | {r['class_entropy']:.2f} |\n"
                   for r in result["rows"])
    r0 = result["rows"][0]
    return (head + body + f"\n`{result['name']}` ({result['train_steps']} training steps), n = {result['n']} samples "
            f"vs {result['n']} test images, sampling seed {result['seed']}; real-vs-real FID floor {r0['fid_floor']:.2f}; "
            f"real images' dark fraction {r0['dark_fraction_real']:.3f}, class entropy {r0['class_entropy_real']:.2f} bits. "
            f"Speeds on {result['hardware']['cuda'] or result['hardware']['cpu']} with {result['hardware']['threads']} "
            "threads, batches of 250 images.\n")


def plot(result: dict):
    import matplotlib.pyplot as plt
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.4))
    ddpm = result["rows"][0]
    for eta in sorted({r["eta"] for r in result["rows"] if r["sampler"] == "ddim"}):
        rs = [r for r in result["rows"] if r["sampler"] == "ddim" and r["eta"] == eta]
        a1.plot([r["steps"] for r in rs], [r["fid"] for r in rs], "o-", label=f"DDIM, eta {eta:g}")
        a2.plot([r["steps"] for r in rs], [r["images_per_s"] for r in rs], "o-", label=f"DDIM, eta {eta:g}")
    a1.axhline(ddpm["fid"], c="k", ls="--", lw=1, label="DDPM, 150 steps")
    a1.axhline(ddpm["fid_floor"], c="gray", ls=":", lw=1, label="real vs real")
    a2.axhline(ddpm["images_per_s"], c="k", ls="--", lw=1, label="DDPM, 150 steps")
    a1.set_ylabel(f"Fashion-FID (n = {result['n']})")
    a2.set_ylabel("images / s")
    a2.set_yscale("log")
    for ax in (a1, a2):
        ax.set_xlabel("sampling steps K")
        ax.set_xscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"{result['name']}: DDIM vs DDPM", fontsize=9)
    fig.tight_layout()
    return fig
