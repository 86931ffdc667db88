"""The compute-aware study: every ladder rung trained to the **same training compute** (FLOPs), evaluated at
several points along the way, so that Fashion-FID can be drawn against steps *and* against compute
(``python -m course_utils study``).

Why: ``optimized`` costs about 12x the baseline's FLOPs per training step (``course_utils.model.cost``). Comparing
rungs at equal steps says what an idea does to the network; comparing them at equal compute says what it is worth
on a given machine. The budget is the compute of ``reference_steps`` steps of ``optimized``; a preset that costs
less per step gets proportionally more steps.

Two studies (:data:`STUDIES`), one machinery:

- ``cpu``: the original course's recipe (the original schedule, eps-prediction, Adam at a constant learning rate),
  a budget of 1,000 ``optimized`` steps; every run evaluated at 1/8, 1/4, 1/2 and 1 of its budget and at 1,000 steps.
- ``cpu-best-recipe`` (``--recipe best``): best-cpu's recipe (the zero-terminal-SNR linear schedule,
  v-prediction, Adam 1e-3 decayed to 0 along a cosine over each run's own budget), a budget of 3,000 ``optimized``
  steps (3x the first). Under a cosine learning rate a run is *finished* only at its own budget: the points at 1/8,
  1/4 and 1/2 of it (and at 1,000 or 3,000 steps, where those fall inside a longer budget) are **mid-run**
  evaluations of the same run, labelled ``"finished": false`` with the learning rate they were taken at. At equal
  compute that comparison stays fair, because every run is at the same phase of its own schedule at the same
  fraction of its budget. At equal steps it would not (at 3,000 steps ``optimized`` has finished its decay while
  ``baseline`` has not begun it), so the equal-steps view comes from separate, finished runs of ``reference_steps``
  steps (plan entries ``(preset, seed, "steps")``), which cost a small part of a budget for the narrow presets.

Every run is one :class:`~course_utils.study.runspec.RunSpec`, evaluated on its EMA weights, with BatchNorm
statistics recomputed for them, and the sampler in ``EVAL``. Resumable and nothing lost: a run trains from milestone
to milestone in ``runs/specs/``; after each milestone its evaluation is appended to
``results/study/<name>/runs/<label>-seed<seed>.json`` (small JSON, meant to be committed as it arrives). A stored
evaluation is reused only when its run and evaluation settings are the ones asked for (the one cache rule,
:func:`~course_utils.study.runspec.cached_point`). Start the command again and it continues with the next missing
milestone.
"""
from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from course_utils import plotting
from course_utils.data import load
from course_utils.diffusion import sample
from course_utils.errors import CourseError
from course_utils.evaluation.evaluate import default_classifier
from course_utils.model.cost import sample_gflops_per_image, train_gflops
from course_utils.model.unet import LADDER, PRESETS, WIDTH_STEPS
from course_utils.paths import results_dir
from course_utils.plotting import save_grid_png
from course_utils.stats import pooled_sd
from course_utils.study.runspec import EvalSettings, Recipe, RunSpec, cached_point, same_settings, save_record
from course_utils.system import atomic_write_text, hardware
from course_utils.train import recompute_batchnorm

REFERENCE = "optimized"
REFERENCE_STEPS = 1000
FRACTIONS = (0.125, 0.25, 0.5, 1.0)
WIDTH_PARTS = WIDTH_STEPS[1:-1]
# the leave-one-out presets that are networks of their own (no_extra_skip is the residual rung's network)
LEAVE_ONE_OUT = [n for n, p in PRESETS.items() if p.kind == "leave-one-out"
                 and all(p.config != PRESETS[q].config for q in LADDER)]
MIDDLE = [p for p in LADDER if p not in ("baseline", "optimized")]
# the order runs are made in: the two ends of the ladder first, then one seed of every rung between them, then
# the extra seeds of the two ends, then the width side study (the width idea's three changes one at a time)
PLAN = ([("baseline", 0), ("optimized", 0)] + [(p, 0) for p in MIDDLE]
        + [("baseline", 1), ("optimized", 1), ("baseline", 2), ("optimized", 2)] + [(p, 0) for p in WIDTH_PARTS])
# the best-recipe study (issue order): the two ends with 3 seeds (and their finished equal-step runs), every rung
# and width part with one seed, then the leave-one-out presets at optimized's budget
PLAN_BEST = ([("optimized", 0), ("baseline", 0, "steps"), ("baseline", 0), ("optimized", 1), ("baseline", 1, "steps"),
              ("baseline", 1), ("optimized", 2), ("baseline", 2, "steps"), ("baseline", 2)]
             + [(p, 0) for p in MIDDLE[:1] + WIDTH_PARTS + MIDDLE[1:]] + [(p, 0) for p in LEAVE_ONE_OUT]
             + [(p, 0, "steps") for p in MIDDLE[:1] + WIDTH_PARTS + MIDDLE[1:]])
# the presets in the order the table and the curves show them: the width parts between upsample and wide
ORDER = LADDER[:LADDER.index("wide")] + WIDTH_PARTS + LADDER[LADDER.index("wide"):]
RECIPE = {"lr": 1e-3, "batch_size": 128, "ema": 0.999}
LR_SCHEDULES = ("constant", "cosine")
# best-cpu's diffusion settings (course_utils.study.best.BEST): the schedule comparison's winner
BEST_OVERRIDES = {"schedule": "linear", "zero_terminal_snr": True, "prediction": "v"}


def make_recipe(lr: float | None = None, batch_size: int | None = None, ema: float | None = None,
                lr_schedule: str = "constant") -> dict:
    """``RECIPE`` with changes; ``lr_schedule="cosine"`` decays the learning rate to 0 over each run's budget.
    (A constant schedule adds no key, so the study's recorded settings stay those of its existing runs.)"""
    return Recipe(lr or RECIPE["lr"], batch_size or RECIPE["batch_size"], ema or RECIPE["ema"], lr_schedule).to_dict()
# DDIM with 50 steps and eta = 1 comes within 6% of DDPM's FID at 3x its speed (results/samplers/optimized-final);
# BatchNorm statistics of the EMA weights are recomputed before sampling (``ema-check`` shows why).
EVAL = {"n": 500, "sampler": "ddim", "steps": 50, "eta": 1.0, "batchnorm": "recomputed"}


@dataclass(frozen=True)
class Study:
    """One study: its recipe (training and diffusion settings), its compute budget (``reference_steps`` steps of
    ``optimized``), where each run is evaluated, and the order runs are made in."""

    name: str
    recipe: dict = field(default_factory=lambda: dict(RECIPE))
    overrides: dict = field(default_factory=dict)   # config fields every run changes (the diffusion settings)
    reference_steps: int = REFERENCE_STEPS
    fractions: tuple = FRACTIONS
    extra_steps: tuple | None = None                # also evaluated there (default: reference_steps)
    evaluation: dict = field(default_factory=lambda: dict(EVAL))
    plan: tuple = tuple(PLAN)

    def settings(self) -> dict:
        s = {"reference": REFERENCE, "reference_steps": self.reference_steps, "fractions": list(self.fractions),
             "recipe": self.recipe, "eval": self.evaluation}
        if self.overrides:
            s["overrides"] = self.overrides
        return s

    def budget_gflop(self) -> float:
        return self.reference_steps * train_gflops(REFERENCE)

    def steps_for(self, preset: str) -> int:
        return max(1, round(self.budget_gflop() / train_gflops(preset)))

    def spec(self, preset: str, seed: int, kind: str = "budget") -> RunSpec:
        """The run of ``preset``: to the study's compute budget (``kind="budget"``) or, for the equal-step view, to
        ``reference_steps`` steps (``kind="steps"``)."""
        if kind not in ("budget", "steps"):
            raise CourseError(f"a plan entry's kind is 'budget' or 'steps', got {kind!r}.")
        steps = self.steps_for(preset) if kind == "budget" else self.reference_steps
        label = preset if kind == "budget" else f"{preset}-{steps}steps"
        return RunSpec.of(preset, steps, seed, Recipe.from_dict(self.recipe), self.overrides, label)

    def milestones(self, preset: str, kind: str = "budget") -> list[int]:
        """Where a run is evaluated: the fractions of its own budget and the equal-step points inside it."""
        total = self.spec(preset, 0, kind).steps
        if kind == "steps":
            return [total]
        extra = self.extra_steps if self.extra_steps is not None else (self.reference_steps,)
        points = {max(1, round(f * total)) for f in self.fractions} | set(extra)
        return sorted(p for p in points if p <= total)

    def eval_settings(self) -> EvalSettings:
        return EvalSettings.from_dict(self.evaluation)


STUDIES = {
    "cpu": Study("cpu"),
    "cpu-best-recipe": Study("cpu-best-recipe", recipe=make_recipe(lr_schedule="cosine"), overrides=BEST_OVERRIDES,
                             reference_steps=3000, extra_steps=(1000, 3000), plan=tuple(PLAN_BEST)),
}
RECIPES = {"original": "cpu", "best": "cpu-best-recipe"}  # --recipe NAME: the study it makes


def get_study(name: str | Study = "cpu") -> Study:
    """A study by name; an unknown name is a study of its own with the first study's settings."""
    if isinstance(name, Study):
        return name
    return STUDIES.get(name) or Study(name)


def study_dir(name: str = "cpu") -> Path:
    return results_dir() / "study" / name


def budget_gflop(reference_steps: int = REFERENCE_STEPS) -> float:
    """The training compute every rung gets: ``reference_steps`` steps of ``optimized`` (GFLOP)."""
    return Study("-", reference_steps=reference_steps).budget_gflop()


def steps_for(preset: str, reference_steps: int = REFERENCE_STEPS) -> int:
    """The steps of ``preset`` that cost the budget's compute."""
    return Study("-", reference_steps=reference_steps).steps_for(preset)


def milestones(preset: str, reference_steps: int = REFERENCE_STEPS, fractions=FRACTIONS) -> list[int]:
    """Where a run of the first study's kind is evaluated: the fractions of its own budget, and the reference steps."""
    return Study("-", reference_steps=reference_steps, fractions=tuple(fractions)).milestones(preset)


def label_of(preset: str, kind: str, study: Study) -> str:
    return study.spec(preset, 0, kind).label


def result_file(preset: str, seed: int, name: str = "cpu", kind: str = "budget") -> Path:
    return study_dir(name) / "runs" / f"{label_of(preset, kind, get_study(name))}-seed{seed}.json"


def _upgrade(record: dict, study: Study) -> dict:
    """A record written before runs were RunSpecs (the first study): add the spec and each point's settings."""
    if "spec" in record or "settings" not in record:
        return record
    s = record["settings"]
    spec = RunSpec.of(record["preset"], record["steps"], record["seed"], Recipe.from_dict(s["recipe"]),
                      s.get("overrides"))
    ev = EvalSettings.from_dict(s["eval"]).to_dict()
    return {**record, "kind": "budget", "label": record["preset"], "spec": spec.to_dict(), "key": spec.key(),
            "points": [{**p, "eval": p.get("eval", ev)} for p in record["points"]]}


def load_run(preset: str, seed: int, name: str = "cpu", kind: str = "budget") -> dict | None:
    f = result_file(preset, seed, name, kind)
    return _upgrade(json.loads(f.read_text()), get_study(name)) if f.is_file() else None


def _new_record(study: Study, preset: str, seed: int, kind: str, spec: RunSpec) -> dict:
    return {"preset": preset, "seed": seed, "kind": kind, "label": spec.label, "settings": study.settings(),
            "spec": spec.to_dict(), "key": spec.key(), "steps": spec.steps,
            "train_gflops_per_step": train_gflops(preset),
            "sample_gflops_per_image": sample_gflops_per_image(preset, study.evaluation.get("steps")),
            "hardware": hardware(), "points": []}


def run_one(preset: str, seed: int, name: str | Study = "cpu", kind: str = "budget", progress: bool = True,
            device=None) -> dict:
    """Train one run of ``preset`` (seed ``seed``) of study ``name`` in segments, evaluating at every milestone;
    resumable, and a stored evaluation is reused only under the one cache rule."""
    study = get_study(name)
    spec = study.spec(preset, seed, kind)
    settings = study.eval_settings()
    path = study_dir(study.name) / "runs" / f"{spec.label}-seed{seed}.json"
    record = _upgrade(json.loads(path.read_text()), study) if path.is_file() else None
    if record is not None and not same_settings(record, spec):
        raise CourseError(f"{path} was made with other settings ({record.get('spec')}), not {spec.to_dict()}. "
                          "Fix: choose another study name (--name) or move that file away.")
    record = record or _new_record(study, preset, seed, kind, spec)
    clf = None
    for m in study.milestones(preset, kind):
        if cached_point(record, spec, m, settings) is not None:
            continue
        clf = clf or default_classifier()
        point = spec.evaluate(m, settings, classifier=clf, progress=progress, device=device)
        point = {"step": m, "train_tflop": m * record["train_gflops_per_step"] / 1e3, **point,
                 "eval": settings.to_dict()}
        record["points"] = sorted([p for p in record["points"] if p["step"] != m] + [point], key=lambda p: p["step"])
        save_record(path, record)
        if progress:
            print(f"{spec.label} seed {seed} step {m}{'' if point['finished'] else ' (mid-run)'}: FID "
                  f"{point['fid']:.2f} (floor {point['fid_floor']:.2f}), {point['train_tflop']:.1f} TFLOP, "
                  f"{point['train_seconds']:.0f} s of training", flush=True)
    return record


SAMPLES = 32  # images in each finished run's sample grid


def samples_file(preset: str, seed: int, name: str = "cpu") -> Path:
    return study_dir(name) / "samples" / f"{preset}-seed{seed}.png"


def save_samples(preset: str, seed: int, name: str = "cpu", n: int = SAMPLES) -> Path | None:
    """A grid of ``n`` samples (seed 0, the study's sampler) from a finished run's EMA weights with BatchNorm
    statistics recomputed, as a pixel-exact grayscale PNG (8 per row, 16x16 pixels each) in
    results/study/<name>/samples/; None when the run's checkpoint is not on this machine or not finished."""
    study = get_study(name)
    spec = study.spec(preset, seed)
    if load_run(preset, seed, name) is None or spec.trained_steps() != spec.steps:
        return None
    model, _ = spec.load()
    recompute_batchnorm(model, load("train"))
    ev = study.eval_settings()
    imgs = sample(model, n, seed=0, sampler=ev.sampler, steps=ev.steps, eta=ev.eta)
    save_grid_png(imgs, samples_file(preset, seed, name))
    return samples_file(preset, seed, name)


def is_finished(record: dict | None, preset: str, name: str | Study = "cpu", kind: str = "budget") -> bool:
    """Whether a run's record has an evaluation at every milestone."""
    study = get_study(name)
    return record is not None and {p["step"] for p in record["points"]} >= set(study.milestones(preset, kind))


def _entry(item) -> tuple[str, int, str]:
    preset, seed, *kind = item
    return preset, seed, (kind[0] if kind else "budget")


def study(name: str | Study = "cpu", plan: list | None = None, max_runs: int | None = None,
          progress: bool = True, device=None) -> dict:
    """Make (or continue) every run of ``plan`` (default: the study's own) in order, then summarize what is there."""
    st = get_study(name)
    made = 0
    for preset, seed, kind in map(_entry, plan or st.plan):
        if is_finished(load_run(preset, seed, st.name, kind), preset, st, kind):
            if kind == "budget" and not samples_file(preset, seed, st.name).is_file():
                save_samples(preset, seed, st.name)  # runs finished before grids were saved
            continue
        if max_runs is not None and made >= max_runs:
            break
        run_one(preset, seed, st, kind, progress, device)
        if kind == "budget":
            save_samples(preset, seed, st.name)
        made += 1
        summarize(st.name)
    return summarize(st.name)


# --- summary ------------------------------------------------------------------------------------------------

def load_all(name: str = "cpu", kind: str = "budget") -> list[dict]:
    """The records of study ``name``'s runs of ``kind`` ("budget": to the compute budget; "steps": the finished
    equal-step runs; None: all)."""
    folder = study_dir(name) / "runs"
    records = [json.loads(f.read_text()) for f in sorted(folder.glob("*.json"))] if folder.is_dir() else []
    return [r for r in records if kind is None or r.get("kind", "budget") == kind]


def _mean_sd(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else float("nan"))


def point_at(record: dict, step: int) -> dict | None:
    return next((p for p in record["points"] if p["step"] == step), None)


def _view(pts: list[dict]) -> dict:
    view = {"step": pts[0]["step"], "seeds": len(pts), "fids": [p["fid"] for p in pts],
            "fid": _mean_sd([p["fid"] for p in pts]), "fid_floor": pts[0]["fid_floor"],
            # the median: a run that shared the machine with other work takes longer
            "train_seconds": statistics.median(p["train_seconds"] for p in pts),
            "checkerboard_ratio": statistics.fmean(p["checkerboard"] / p["checkerboard_real"] for p in pts),
            "dark_fraction": statistics.fmean(p["dark_fraction"] for p in pts)}
    if not all(p.get("finished", True) for p in pts):
        view["finished"] = False  # a mid-run point of a run whose learning rate had not finished its decay
    return view


def summarize(name: str = "cpu") -> dict:
    """Both views per preset (mean ± sd over seeds): FID at equal steps (the reference steps: a finished run of
    that length where the study made one, else the budget run's point there) and at equal compute (each run's
    last milestone); written to results/study/<name>/summary.json, table.md, verdicts.md, curves.png."""
    records, short = load_all(name), load_all(name, "steps")
    if not records:
        return {"rows": []}
    settings = records[0]["settings"]
    ref_steps = settings["reference_steps"]
    rows = []
    for preset in [p for p in ORDER + LEAVE_ONE_OUT if any(r["preset"] == p for r in records)]:
        mine = [r for r in records if r["preset"] == preset]
        row = {"preset": preset, "width_part": preset in WIDTH_PARTS, "seeds": sorted(r["seed"] for r in mine),
               "train_gflops": mine[0]["train_gflops_per_step"], "budget_steps": mine[0]["steps"]}
        finished_short = [point_at(r, r["steps"]) for r in short if r["preset"] == preset]
        finished_short = [p for p in finished_short if p is not None]
        at_ref = [p for p in (point_at(r, ref_steps) for r in mine) if p is not None]
        at_end = [p for p in (point_at(r, r["steps"]) for r in mine) if p is not None]
        for view, pts in (("equal_steps", finished_short or at_ref), ("equal_compute", at_end)):
            if pts:
                row[view] = _view(pts)
        rows.append(row)
    out = {"name": name, "settings": settings, "rows": rows, "runs": len(records)}
    if short:
        out["equal_step_runs"] = len(short)
    folder = study_dir(name)
    atomic_write_text(folder / "summary.json", json.dumps(out, indent=1))
    atomic_write_text(folder / "table.md", markdown(out))
    atomic_write_text(folder / "verdicts.md", verdicts_markdown(out))
    plotting.save(plot_curves(records), folder / "curves.png")
    return out


def run_spread(summary: dict, view: str) -> float | None:
    """The seed-to-seed spread of one run's FID in ``view``: :func:`course_utils.stats.pooled_sd` over the presets
    with two or more seeds (None if there are none)."""
    groups = [r[view]["fids"] for r in summary["rows"] if view in r]
    return pooled_sd(groups)


def verdict(before: dict, after: dict, spread: float | None) -> str:
    """'better', 'worse' or 'within noise' for a change of mean FID from ``before`` to ``after`` (summary views):
    a difference counts when it exceeds two spreads of a single run's FID."""
    diff = after["fid"][0] - before["fid"][0]
    if spread is None:
        return "spread not measured yet"
    if abs(diff) <= 2 * spread:
        return "within noise"
    return "better" if diff < 0 else "worse"


def steps_of_ladder(summary: dict) -> list[dict]:
    """Each step of the ladder (and of the width side study) with its change of mean FID and verdict in both
    views: [{"from", "to", "idea", "equal_steps": {"change", "verdict"}, "equal_compute": {...}}, ...]."""
    rows = {r["preset"]: r for r in summary["rows"]}
    chains = [LADDER, WIDTH_STEPS]
    out = []
    for chain in chains:
        for before, after in zip(chain, chain[1:]):
            if before not in rows or after not in rows or (chain is WIDTH_STEPS and after == "wide"
                                                           and "wide_upconvs" not in rows):
                continue
            step = {"from": before, "to": after, "idea": PRESETS[after].idea, "width_part": chain is WIDTH_STEPS}
            for view in ("equal_steps", "equal_compute"):
                a, b = rows[before].get(view), rows[after].get(view)
                if a and b:
                    step[view] = {"change": b["fid"][0] - a["fid"][0],
                                  "verdict": verdict(a, b, run_spread(summary, view))}
            out.append(step)
    return out


def verdicts_markdown(summary: dict) -> str:
    """The ladder's steps as a table: the change of FID and the verdict at equal steps and at equal compute."""
    spread = {v: run_spread(summary, v) for v in ("equal_steps", "equal_compute")}
    head = ("| step | idea | FID change at equal steps | verdict | FID change at equal compute | verdict |\n"
            "|---|---|---:|---|---:|---|\n")
    body = ""
    for st in steps_of_ladder(summary):
        cells = []
        for v in ("equal_steps", "equal_compute"):
            c = st.get(v)
            cells += [f"{c['change']:+.1f}", c["verdict"]] if c else ["—", "—"]
        label = f"{st['from']} → {st['to']}" + (" (width part)" if st["width_part"] else "")
        body += f"| {label} | {st['idea']} | {cells[0]} | {cells[1]} | {cells[2]} | {cells[3]} |\n"
    def sd(v):
        return (f"a spread of {spread[v]:.1f}, so a threshold of {2 * spread[v]:.1f}," if spread[v]
                else "spread not measured yet")
    return (head + body + f"\nA negative change is an improvement (lower FID). A change counts only when it exceeds two "
            f"seed-to-seed spreads of a single run's FID, pooled over the presets with several seeds: "
            f"{sd('equal_steps')} at equal steps, {sd('equal_compute')} at equal compute; smaller ones are within "
            "noise.\n")


def load_summary(name: str = "cpu") -> dict | None:
    """The saved summary of study ``name`` (None before its first milestone)."""
    f = study_dir(name) / "summary.json"
    return json.loads(f.read_text()) if f.is_file() else None


def progress_of(name: str = "cpu", plan: list | None = None) -> tuple[list, list]:
    """(finished runs, runs still to make or to finish) of the plan, as plan entries."""
    st = get_study(name)
    finished, todo = [], []
    for item in plan or st.plan:
        preset, seed, kind = _entry(item)
        (finished if is_finished(load_run(preset, seed, st.name, kind), preset, st, kind) else todo).append(item)
    return finished, todo


def markdown(summary: dict) -> str:
    s = summary["settings"]

    def cell(view):
        if view is None:
            return "—", "—", "—"
        m, sd = view["fid"]
        fid = f"{m:.1f}" + ("" if sd != sd else f" ± {sd:.1f}") + f" ({view['seeds']})"
        if view.get("finished") is False:
            fid += "*"
        return fid, f"{view['step']:,}", f"{view['train_seconds'] / 60:.1f}"

    head = ("| preset | GFLOP/step | FID at equal steps | steps | min | FID at equal compute | steps | min |\n"
            "|---|---:|---:|---:|---:|---:|---:|---:|\n")
    body = ""
    for r in summary["rows"]:
        a, b = cell(r.get("equal_steps")), cell(r.get("equal_compute"))
        name = f"{r['preset']} (width part)" if r.get("width_part") else r["preset"]
        body += f"| {name} | {r['train_gflops']:.1f} | {a[0]} | {a[1]} | {a[2]} | {b[0]} | {b[1]} | {b[2]} |\n"
    floor = next((r[v]["fid_floor"] for r in summary["rows"] for v in ("equal_compute", "equal_steps") if v in r), math.nan)
    e = s["eval"]
    return (head + body + f"\nFashion-FID of the EMA weights, mean ± sd over seeds (number of seeds in brackets), n = "
            f"{e['n']} samples ({e['sampler'].upper()}, {e.get('steps') or 150} steps, eta {e.get('eta', 0)}) vs "
            f"{e['n']} test images; real-vs-real floor {floor:.2f}. BatchNorm statistics of the EMA weights "
            f"{e.get('batchnorm', 'averaged')}. Equal steps: {s['reference_steps']:,} steps "
            f"each. Equal compute: {s['reference_steps']:,} steps of {s['reference']} "
            f"({budget_gflop(s['reference_steps']) / 1e3:.1f} TFLOP) each. Recipe: Adam lr {s['recipe']['lr']} "
            f"({s['recipe'].get('lr_schedule', 'constant')}), batch {s['recipe']['batch_size']}, EMA {s['recipe']['ema']} (BatchNorm statistics averaged "
            "too). Minutes: training time on the machine that made the run (median over seeds). Width parts: the width idea's "
            "three changes one at a time (upsample -> channels -> + four up convs -> + no norm after the upsampler = "
            "wide)." + _best_recipe_note(summary) + "\n")


def _best_recipe_note(summary: dict) -> str:
    """What a study with other diffusion settings or a decaying learning rate adds to the table's notes."""
    s, note = summary["settings"], ""
    if s.get("overrides"):
        note += " Diffusion settings of every run: " + ", ".join(f"{k}={v}" for k, v in s["overrides"].items()) + "."
    if s["recipe"].get("lr_schedule", "constant") != "constant":
        note += (" The learning rate decays to 0 over each run's own length, so a run is finished only at its end: "
                 "a * marks a mid-run point (the equal-step point of a longer run, until the finished run of "
                 f"{s['reference_steps']:,} steps is made).")
        if summary.get("equal_step_runs"):
            note += f" Equal steps from {summary['equal_step_runs']} finished run(s) of {s['reference_steps']:,} steps."
    return note


def plot_curves(records: list[dict]):
    """FID against training steps and against training compute, one colour per rung, mean over seeds."""
    import matplotlib.pyplot as plt
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    colors = list(plt.get_cmap("tab10").colors) + ["#222222", "#a6a600"]
    for k, preset in enumerate(p for p in ORDER if any(r["preset"] == p for r in records)):
        mine = [r for r in records if r["preset"] == preset]
        steps = sorted(set.intersection(*[{p["step"] for p in r["points"]} for r in mine]))
        if not steps:
            continue
        fids = [[point_at(r, s)["fid"] for r in mine] for s in steps]
        mean = [statistics.fmean(f) for f in fids]
        tflop = [s * mine[0]["train_gflops_per_step"] / 1e3 for s in steps]
        label = f"{preset} ({len(mine)} seed{'s' if len(mine) > 1 else ''})"
        for ax, x in ((a1, steps), (a2, tflop)):
            ax.plot(x, mean, "o--" if preset in WIDTH_PARTS else "o-", color=colors[k % len(colors)], label=label, ms=3)
            if len(mine) > 1:
                lo, hi = [min(f) for f in fids], [max(f) for f in fids]
                ax.fill_between(x, lo, hi, color=colors[k % len(colors)], alpha=0.15)
    floor = records[0]["points"][0]["fid_floor"]
    for ax, xl in ((a1, "training steps (batch 128)"), (a2, "training compute (TFLOP)")):
        ax.axhline(floor, c="k", ls=":", lw=1)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(xl)
        ax.grid(alpha=0.3, which="both")
    a1.set_ylabel("Fashion-FID (EMA weights)")
    a2.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    a1.set_title("equal steps: what an idea does to the network", fontsize=9)
    a2.set_title("equal compute: what it is worth on a machine", fontsize=9)
    fig.tight_layout()
    return fig
