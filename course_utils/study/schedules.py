"""The noise-schedule comparison of notebook 09: ``python -m course_utils compare-schedules``.

One preset trained under each schedule of :data:`course_utils.lessons.noise_schedule.SETTINGS` for the same steps
and seeds (EMA, BatchNorm statistics recomputed), scored with DDPM on ``n`` samples (Fashion-FID, dark fraction,
class entropy, pixel statistics), again with x0 clipped, and once more started from the *true* q(x_T) of held-out
test images (a diagnostic that leaks data, so it has no FID). Resumable: each evaluation is saved in ``OUT/runs/``
with its run and settings (the one cache rule).
"""
from __future__ import annotations

import json
import statistics
from pathlib import Path

import torch

from course_utils.data import load
from course_utils.diffusion import sample
from course_utils.errors import CourseError
from course_utils.evaluation.evaluate import EvalSettings, default_classifier, evaluate_images
from course_utils.lessons.noise_schedule import SETTINGS, true_start
from course_utils.paths import results_dir
from course_utils.plotting import save_grid_png
from course_utils.study.runspec import Recipe, RunSpec, cached_point
from course_utils.system import atomic_write_text, hardware
from course_utils.train import recompute_batchnorm

PRESET = "baseline"
STEPS = 2000
SEEDS = (0, 1)
EMA = 0.999
N = 500
SAMPLES = 32
KEYS = ("fid", "fid_floor", "dark_fraction", "dark_fraction_real", "class_entropy", "class_entropy_real",
        "confidence", "confidence_real", "pixel_mean", "pixel_std", "pixel_mean_real", "pixel_std_real")


def schedules_dir(preset: str = PRESET) -> Path:
    return results_dir() / "schedules" / preset


def _pixels(images: torch.Tensor) -> dict:
    return {"pixel_mean": float(images.mean()), "pixel_std": float(images.std())}


def _measure(images: torch.Tensor, clf) -> dict:
    real = load("test").images[:len(images)]
    m = evaluate_images(images, clf)
    px, px_real = _pixels(images), _pixels(real)
    return {**{k: m[k] for k in KEYS if k in m}, **px, "pixel_mean_real": px_real["pixel_mean"],
            "pixel_std_real": px_real["pixel_std"]}


def spec_of(name: str, seed: int, preset: str = PRESET, steps: int = STEPS, out: Path | None = None) -> RunSpec:
    """The run of ``preset`` under schedule ``name``: in ``runs/specs/`` for the shipped results folder, in
    ``OUT/train/NAME-seedS`` for another one."""
    if name not in SETTINGS:
        raise CourseError(f"unknown schedule setting {name!r}; choose from {', '.join(SETTINGS)}.")
    spec = RunSpec.of(preset, steps, seed, Recipe(ema=EMA), SETTINGS[name], label=f"{preset}-{name}")
    if out is None or Path(out) == schedules_dir(preset):
        return spec
    return spec.moved(Path(out) / "train" / f"{name}-seed{seed}")


def _cached(cache: Path, spec: RunSpec, settings: EvalSettings) -> dict | None:
    """The stored record at ``cache`` if the same run and settings made it; another run's is refused."""
    if not cache.is_file():
        return None
    saved = json.loads(cache.read_text())
    if cached_point(saved, spec, spec.steps, settings) is not None:
        return saved
    raise CourseError(f"{cache} was made with other settings ({saved.get('spec')}, {saved.get('points')}). Fix: "
                      "choose another --out folder or move that file away.")


def _trained(spec: RunSpec, progress: bool, device):
    if progress and spec.trained_steps() < spec.steps:
        print(f"{spec.describe()}: training", flush=True)
    spec.train_to(spec.steps, progress, device)
    model, header = spec.load()
    return recompute_batchnorm(model, load("train")), header


def run_one(name: str, seed: int, preset: str = PRESET, steps: int = STEPS, n: int = N, out: Path | None = None,
            progress: bool = True, device=None) -> dict:
    """Train ``preset`` under schedule ``name`` (seed ``seed``) for ``steps`` steps, or reuse that run, and
    evaluate it from N(0, I) and from the true q(x_T); the result is cached in ``out/runs/``."""
    spec, settings = spec_of(name, seed, preset, steps, out), EvalSettings(n, "ddpm", None, 0.0)
    out = Path(out) if out else schedules_dir(preset)
    cache = out / "runs" / f"{name}-seed{seed}.json"
    saved = _cached(cache, spec, settings)
    if saved is not None:
        return saved
    model, header = _trained(spec, progress, device)
    clf = default_classifier()
    images = sample(model, n, seed=0, device=device)
    start = true_start(load("test").images[-n:], name, seed=seed)  # the end of the test split: held out from FID's
    from_true = sample(model, n, seed=0, device=device, start=start)
    record = {"schedule": name, "seed": seed, "config": SETTINGS[name], "spec": spec.to_dict(),
              "points": [{"step": steps, "eval": settings.to_dict()}],
              "train_seconds": header["meta"].get("seconds"), "hardware": hardware(),
              "noise_start": _measure(images, clf),
              "true_start": {k: v for k, v in _measure(from_true, clf).items() if not k.startswith("fid")}}
    atomic_write_text(cache, json.dumps(record, indent=1))
    save_grid_png(images[:SAMPLES], out / "samples" / f"{name}-seed{seed}.png")
    save_grid_png(from_true[:SAMPLES], out / "samples" / f"{name}-seed{seed}-true-start.png")
    if progress:
        m = record["noise_start"]
        print(f"{name} seed {seed}: FID {m['fid']:.1f} (floor {m['fid_floor']:.1f}), dark fraction "
              f"{m['dark_fraction']:.3f} (real {m['dark_fraction_real']:.3f}); from the true q(x_T): dark fraction "
              f"{record['true_start']['dark_fraction']:.3f}", flush=True)
    return record


def run_clipped(name: str, seed: int, preset: str = PRESET, steps: int = STEPS, n: int = N, out: Path | None = None,
                device=None) -> dict:
    """The finished run of ``name`` sampled again with the clean-image estimate clipped to [-1, 1] at every step
    (``sample(clip_x0=True)``, as Ho et al.'s code does); cached in ``out/runs/<name>-seed<seed>-clip.json``."""
    spec, settings = spec_of(name, seed, preset, steps, out), EvalSettings(n, "ddpm", None, 0.0, clip_x0=True)
    out = Path(out) if out else schedules_dir(preset)
    cache = out / "runs" / f"{name}-seed{seed}-clip.json"
    saved = _cached(cache, spec, settings)
    if saved is not None:
        return saved
    run_one(name, seed, preset, steps, n, out, progress=False, device=device)  # trains it if need be
    model, _ = _trained(spec, False, device)
    images = sample(model, n, seed=0, device=device, clip_x0=True)
    record = {"schedule": name, "seed": seed, "spec": spec.to_dict(),
              "points": [{"step": steps, "eval": settings.to_dict()}],
              "noise_start": _measure(images, default_classifier())}
    atomic_write_text(cache, json.dumps(record, indent=1))
    save_grid_png(images[:SAMPLES], out / "samples" / f"{name}-seed{seed}-clip.png")
    return record


def _mean_sd(values: list[float]) -> list[float]:
    return [statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else float("nan")]


def compare_schedules(names=None, seeds=SEEDS, preset: str = PRESET, steps: int = STEPS, n: int = N,
                      out: str | Path | None = None, progress: bool = True, device=None) -> dict:
    """Every run (resumable), then the summary: per schedule, mean and sd over seeds of each measure, from
    N(0, I) and from the true q(x_T); written to ``out`` (results.json, table.md)."""
    names = list(SETTINGS) if names is None else list(names)
    out = Path(out) if out else schedules_dir(preset)
    runs = [run_one(s, seed, preset, steps, n, out, progress, device) for s in names for seed in seeds]
    clipped = [run_clipped(s, seed, preset, steps, n, out, device) for s in names for seed in seeds]
    rows = []
    for s in names:
        mine = [r for r in runs if r["schedule"] == s]
        row = {"schedule": s, "config": SETTINGS[s], "seeds": [r["seed"] for r in mine]}
        for start in ("noise_start", "true_start"):
            row[start] = {k: _mean_sd([r[start][k] for r in mine]) for k in mine[0][start]}
        clip = [r["noise_start"] for r in clipped if r["schedule"] == s]
        row["clipped"] = {k: _mean_sd([c[k] for c in clip]) for k in clip[0]}
        rows.append(row)
    result = {"preset": preset, "steps": steps, "n": n, "seeds": list(seeds), "ema": EMA, "sampler": "ddpm",
              "rows": rows}
    atomic_write_text(out / "results.json", json.dumps(result, indent=1))
    atomic_write_text(out / "table.md", markdown(result))
    return result


def load_results(preset: str = PRESET, out: str | Path | None = None) -> dict | None:
    f = (Path(out) if out else schedules_dir(preset)) / "results.json"
    return json.loads(f.read_text()) if f.is_file() else None


def markdown(result: dict) -> str:
    def cell(ms, digits=1):
        m, sd = ms
        return f"{m:.{digits}f}" + ("" if sd != sd else f" ± {sd:.{digits}f}")
    head = ("| schedule | FID | dark fraction | class entropy (bits) | pixel mean | pixel sd | "
            "dark fraction from true q(x_T) | class entropy from true q(x_T) | FID, x0 clipped | dark fraction, "
            "x0 clipped |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
    body = ""
    for r in result["rows"]:
        a, b, c = r["noise_start"], r["true_start"], r.get("clipped")
        body += (f"| {r['schedule']} | {cell(a['fid'])} | {cell(a['dark_fraction'], 3)} | "
                 f"{cell(a['class_entropy'], 2)} | {cell(a['pixel_mean'], 2)} | {cell(a['pixel_std'], 2)} | "
                 f"{cell(b['dark_fraction'], 3)} | {cell(b['class_entropy'], 2)} | "
                 + (f"{cell(c['fid'])} | {cell(c['dark_fraction'], 3)} |\n" if c else "— | — |\n"))
    first = result["rows"][0]["noise_start"]
    return (head + body + f"| real test images | {first['fid_floor'][0]:.1f} (floor) | "
            f"{first['dark_fraction_real'][0]:.3f} | {first['class_entropy_real'][0]:.2f} | "
            f"{first['pixel_mean_real'][0]:.2f} | {first['pixel_std_real'][0]:.2f} | | | | |\n\n"
            f"`{result['preset']}` trained {result['steps']:,} steps per schedule with an EMA ({result['ema']}) of "
            f"its weights (BatchNorm statistics recomputed), seeds {', '.join(map(str, result['seeds']))}: mean ± sd "
            f"over seeds. {result['n']} samples each, DDPM sampler (all T steps), against as many test images. "
            "The two \"from true q(x_T)\" columns start the same network from the true marginal q(x_T) of held-out "
            "test images instead of N(0, I): a diagnostic that leaks data, so it has no FID. The two \"x0 clipped\" "
            "columns sample from N(0, I) again with the clean-image estimate clipped to [-1, 1] at every step "
            "(`sample(clip_x0=True)`).\n")
