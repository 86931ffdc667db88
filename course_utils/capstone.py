"""Notebook 11's capstone: beat best-cpu in 30 CPU-minutes.

The student edits a recipe (a preset, config fields, the training recipe and a length), :func:`plan` times its
network on this machine and says how many steps fit in the time, :func:`run` trains it under a wall-clock limit
(resumable) and scores it beside best-cpu with the same sampler, the same n and the same seed, and
:func:`leaderboard` keeps every entry made on this machine. Under the ``ci`` and ``quick`` budgets everything is
smaller (seconds, or five minutes, of training; fewer samples), so the numbers only mean something under ``full``.
"""
from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass

from course_utils.checkpoints import read_checkpoint
from course_utils import data
from course_utils.diffusion import sample
from course_utils.errors import CourseError
from course_utils.evaluation.evaluate import EvalSettings, evaluate
from course_utils.model.cost import train_gflops
from course_utils.paths import runs_root
from course_utils.study import best
from course_utils.runs import load_shipped, shipped_path
from course_utils.study.runspec import RunSpec
from course_utils.system import atomic_write_text, hardware, pick_device
from course_utils.train import DiffusionLoss, TimeLimit, Trainer, recompute_batchnorm

REFERENCE = best.NAME  # the entry to beat: checkpoints/best-cpu.safetensors


@dataclass(frozen=True)
class Rules:
    """How long an entry may train and how it is scored, per budget."""

    minutes: float
    n: int
    timing_steps: int = 3  # training steps plan() times (after one warm-up)
    shown: int = 32        # samples per grid in samples()

    def settings(self, seed: int = 0) -> EvalSettings:
        """DDIM, 50 steps, eta 1 (within a few percent of DDPM's FID at a third of its cost), BatchNorm recomputed."""
        return EvalSettings(n=self.n, sampler="ddim", steps=50, eta=1.0, seed=seed)


RULES = {"ci": Rules(0.1, 16, timing_steps=1, shown=16), "quick": Rules(5, 200), "full": Rules(30, 1000)}


def rules(budget) -> Rules:
    return RULES[getattr(budget, "name", budget)]


def starting_recipe() -> dict:
    """best-cpu's own recipe, to edit: preset, config overrides, lr, lr_schedule, batch_size, ema and steps (and
    "seed", 0 unless given)."""
    return json.loads(json.dumps(best.BEST))


def _spec(recipe: dict, name: str) -> RunSpec:
    missing = {"preset", "steps", "lr", "batch_size", "ema"} - set(recipe)
    if missing:
        raise CourseError(f"the recipe lacks {sorted(missing)}. Fix: start from capstone.starting_recipe() and "
                          "change its values.")
    if not name.replace("-", "").replace("_", "").isalnum() or name == REFERENCE:
        raise CourseError(f"an entry's name is letters, digits, - and _, and not {REFERENCE!r}; got {name!r}.")
    spec = best.spec_of(recipe, name, runs_root() / "capstone" / name)
    return dataclasses.replace(spec, seed=int(recipe.get("seed", 0)))


def seconds_per_step(recipe: dict, steps: int = 3, device=None) -> float:
    """The median time of a training step of the recipe's network and batch on this machine (after one warm-up)."""
    spec = _spec(recipe, "timing")
    tr = Trainer(spec.build(), data.load("train"), steps + 1, batch_size=spec.recipe.batch_size, device=device or pick_device(),
                 loss_fn=DiffusionLoss(conditional=spec.config.num_classes > 0))
    times = []
    for tr.step in range(steps + 1):
        t0 = time.perf_counter()
        tr.one_step()
        times.append(time.perf_counter() - t0)
    return sorted(times[1:])[len(times[1:]) // 2]


def plan(recipe: dict, budget, device=None) -> dict:
    """How many steps of ``recipe`` fit in the budget's minutes on this machine (90% of them: the rest is slack for
    checkpoints and a busy machine), at most the recipe's own ``steps``; under ``ci`` at most the budget's steps."""
    r = rules(budget)
    s = seconds_per_step(recipe, r.timing_steps, device)
    fit = max(1, int(0.9 * r.minutes * 60 / s))
    steps = min(recipe["steps"], fit)
    if getattr(budget, "name", budget) == "ci":
        steps = min(steps, budget.steps_for(_spec(recipe, "timing").config))
    out = {"seconds_per_step": s, "steps_that_fit": fit, "steps": steps, "minutes": r.minutes,
           "gflop_per_step": train_gflops(_spec(recipe, "timing").config) * recipe["batch_size"] / 128}
    print(f"{s:.2f} s per step of batch {recipe['batch_size']} on this machine ({out['gflop_per_step']:.1f} GFLOP): "
          f"{fit:,} steps fit in {r.minutes:g} min; the run will train {steps:,} of the recipe's {recipe['steps']:,}"
          + (" (the cosine learning rate decays over these steps)" if steps < recipe["steps"] else ""))
    return out


def _ready(model):
    return recompute_batchnorm(model, data.load("train")).eval()  # a no-op for a GroupNorm network


def score(model, budget, seed: int = 0) -> dict:
    """Fashion-FID (and its real-vs-real floor) of ``model``'s samples under the budget's rules."""
    s = rules(budget).settings(seed)
    return evaluate(_ready(model), n=s.n, seed=s.seed, **s.sample_kwargs())


def reference_score(budget, seed: int = 0) -> dict:
    """best-cpu scored under the same rules; cached in runs/capstone/ for this checkpoint's bytes and these rules."""
    shipped = load_shipped(REFERENCE)
    if shipped is None:
        raise CourseError(f"checkpoints/{REFERENCE}.safetensors is missing. Fix: git checkout -- checkpoints/")
    settings = rules(budget).settings(seed).to_dict()
    stamp = shipped_path(REFERENCE).stat().st_size, read_checkpoint(shipped_path(REFERENCE))[1].get("meta", {}).get("step")
    cache = runs_root() / "capstone" / f"{REFERENCE}-score.json"
    saved = json.loads(cache.read_text()) if cache.is_file() else []
    hit = next((e for e in saved if e["eval"] == settings and tuple(e["checkpoint"]) == stamp), None)
    if hit is not None:
        return hit["metrics"]
    metrics = score(shipped[0], budget, seed)
    atomic_write_text(cache, json.dumps(saved + [{"eval": settings, "checkpoint": stamp, "metrics": metrics}], indent=1))
    return metrics


def _started(recipe: dict, name: str) -> int | None:
    """The planned steps of an earlier, interrupted run of the same recipe under ``name`` (None if there is none)."""
    spec = _spec(recipe, name)
    if not spec.checkpoint.is_file():
        return None
    stored = RunSpec.from_dict(read_checkpoint(spec.checkpoint)[1]["meta"]["spec"])
    if stored.config != spec.config or stored.recipe != spec.recipe or stored.seed != spec.seed:
        raise CourseError(f"{spec.folder} holds an entry '{name}' made with another recipe. Fix: give this one "
                          "another name, or delete that folder.")
    return stored.steps


def run(recipe: dict, name: str, budget, device=None, progress: bool = True) -> dict:
    """Plan, train under the time limit (resumable: run it again to continue an interrupted run), score beside
    best-cpu under the same rules, and add the entry to the leaderboard. Returns the entry."""
    steps = _started(recipe, name)
    if steps is None:
        steps = plan(recipe, budget, device)["steps"]
    else:
        print(f"continuing the earlier run '{name}' to its planned {steps:,} steps (a changed 'steps' is ignored "
              "here: give the new recipe another name)")
    spec = _spec({**recipe, "steps": steps}, name)
    limit = TimeLimit(rules(budget).minutes * 60)
    spec.train_to(spec.steps, progress, device, callbacks=[limit])
    model, header = spec.load()
    meta = header["meta"]
    mine, ref = score(model, budget), reference_score(budget)
    entry = {"name": name, "recipe": {**recipe, "steps": steps}, "trained_steps": meta["step"],
             "train_minutes": round(meta.get("seconds", 0.0) / 60, 2), "cut_by_time_limit": meta["step"] < spec.steps,
             "budget": getattr(budget, "name", budget), "n": rules(budget).n, "fid": mine["fid"],
             "fid_floor": mine["fid_floor"], "reference_fid": ref["fid"], "hardware": hardware()}
    _save_entry(entry)
    verdict = "beats" if entry["fid"] < entry["reference_fid"] else "does not beat"
    print(f"{name}: FID {mine['fid']:.1f} after {entry['train_minutes']:.1f} min and {meta['step']:,} steps; "
          f"{verdict} {REFERENCE}'s {ref['fid']:.1f} (same n = {entry['n']}, sampler and seed; real-vs-real floor "
          f"{mine['fid_floor']:.1f})" + (" - the time limit stopped it early" if entry["cut_by_time_limit"] else ""))
    return entry


def _board_file():
    return runs_root() / "capstone" / "leaderboard.json"


def _save_entry(entry: dict) -> None:
    f = _board_file()
    board = json.loads(f.read_text()) if f.is_file() else []
    board = [e for e in board if (e["name"], e["budget"]) != (entry["name"], entry["budget"])] + [entry]
    atomic_write_text(f, json.dumps(board, indent=1))


def leaderboard(budget) -> str:
    """The entries made under ``budget`` on this machine, best first, with best-cpu (scored the same way) among them."""
    name = getattr(budget, "name", budget)
    f = _board_file()
    board = [e for e in (json.loads(f.read_text()) if f.is_file() else []) if e["budget"] == name]
    ref = reference_score(budget)
    rows = [(e["fid"], e["name"], f"{e['trained_steps']:,}", f"{e['train_minutes']:.1f}") for e in board]
    manifest = json.loads(shipped_path(REFERENCE).with_suffix(".json").read_text())
    rows.append((ref["fid"], f"{REFERENCE} (shipped)", f"{manifest['steps']:,}", f"{manifest['train_minutes']:.1f}"))
    lines = ["| rank | entry | FID | steps | training min |", "|---:|---|---:|---:|---:|"]
    lines += [f"| {k} | {n} | {fid:.1f} | {st} | {mins} |" for k, (fid, n, st, mins) in enumerate(sorted(rows), 1)]
    return ("\n".join(lines) + f"\n\nFashion-FID of n = {rules(budget).n} DDIM samples (50 steps, eta 1, seed 0) "
            f"against as many test images; real-vs-real floor {ref['fid_floor']:.1f}. Budget `{name}`: at most "
            f"{rules(budget).minutes:g} min of training per entry.\n")


def load(recipe: dict, name: str):
    """(model, header) of the entry ``name`` trained with ``recipe`` (its EMA weights)."""
    steps = _started(recipe, name)
    if steps is None:
        raise CourseError(f"there is no entry {name!r} yet. Fix: capstone.run(MY_RECIPE, {name!r}, budget) first.")
    return _spec({**recipe, "steps": steps}, name).load()


def samples(recipe: dict, name: str, budget) -> dict:
    """Sample grids from the same noise, for plotting.compare_grids: best-cpu and the entry ``name``, the budget's
    number of images each, with DDIM (25 steps, eta 1: a picture, not the score, which uses 50)."""
    model, _ = load(recipe, name)
    ref, n = load_shipped(REFERENCE)[0], rules(budget).shown
    return {REFERENCE: sample(_ready(ref), n, seed=0, sampler="ddim", steps=25, eta=1.0),
            name: sample(_ready(model), n, seed=0, sampler="ddim", steps=25, eta=1.0)}
