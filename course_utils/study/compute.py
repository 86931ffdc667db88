"""The compute-aware study: every rung trained to the same training compute (FLOPs) and evaluated along the way, so
that FID can be drawn against steps *and* against compute (``python -m course_utils study [--recipe best]``).

The budget is ``reference_steps`` steps of ``optimized``; a cheaper preset gets proportionally more steps. Two
studies share the machinery (:data:`STUDIES`): ``cpu`` (the original recipe, 1,000 steps' budget) and
``cpu-best-recipe`` (best-cpu's recipe, 3,000 steps' budget). Under a cosine learning rate a run is finished only at
its own budget, so its earlier points are labelled ``"finished": false``; they stay fair at equal compute (every run
is at the same phase of its schedule at the same fraction of its budget) but not at equal steps, which therefore come
from separate finished runs (plan entries ``(preset, seed, "steps")``). Resumable: each milestone's evaluation is
appended to ``results/study/<name>/runs/<label>-seed<seed>.json`` under the one cache rule.
"""
from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from course_utils.data import load
from course_utils.diffusion import sample
from course_utils.errors import CourseError
from course_utils.evaluation.evaluate import EvalSettings, default_classifier
from course_utils.model.cost import sample_gflops_per_image, train_gflops
from course_utils.model.unet import LADDER, PRESETS, WIDTH_STEPS
from course_utils.paths import results_dir
from course_utils.plotting import save_grid_png
from course_utils.study.runspec import Recipe, RunSpec, cached_point, same_settings, save_record
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
CPU = STUDIES["cpu"]  # the first study, which notebook 08 and the figures quote


def get_study(name: str | Study = "cpu") -> Study:
    """A study by name; an unknown name is a study of its own with the first study's settings."""
    if isinstance(name, Study):
        return name
    return STUDIES.get(name) or Study(name)


def study_dir(name: str = "cpu") -> Path:
    return results_dir() / "study" / name


def result_file(preset: str, seed: int, name: str | Study = "cpu", kind: str = "budget") -> Path:
    study = get_study(name)
    return study_dir(study.name) / "runs" / f"{study.spec(preset, 0, kind).label}-seed{seed}.json"


def _upgrade(record: dict) -> dict:
    """A record written before runs were RunSpecs (the first study): add the spec and each point's settings."""
    if "spec" in record or "settings" not in record:
        return record
    s = record["settings"]
    spec = RunSpec.of(record["preset"], record["steps"], record["seed"], Recipe.from_dict(s["recipe"]),
                      s.get("overrides"))
    ev = EvalSettings.from_dict(s["eval"]).to_dict()
    return {**record, "kind": "budget", "label": record["preset"], "spec": spec.to_dict(), "key": spec.key(),
            "points": [{**p, "eval": p.get("eval", ev)} for p in record["points"]]}


def load_run(preset: str, seed: int, name: str | Study = "cpu", kind: str = "budget") -> dict | None:
    f = result_file(preset, seed, name, kind)
    return _upgrade(json.loads(f.read_text())) if f.is_file() else None


def _new_record(study: Study, preset: str, seed: int, kind: str, spec: RunSpec) -> dict:
    return {"preset": preset, "seed": seed, "kind": kind, "label": spec.label, "settings": study.settings(),
            "spec": spec.to_dict(), "key": spec.key(), "steps": spec.steps,
            "train_gflops_per_step": train_gflops(preset),
            "sample_gflops_per_image": sample_gflops_per_image(preset, study.evaluation.get("steps")),
            "hardware": hardware(), "points": []}


def run_one(preset: str, seed: int, name: str | Study = "cpu", kind: str = "budget", progress: bool = True,
            device=None, after_point=None) -> dict:
    """Train one run of ``preset`` (seed ``seed``) of study ``name`` in segments, evaluating at every milestone;
    resumable, and a stored evaluation is reused only under the one cache rule. ``after_point()`` is called after
    each evaluation is saved."""
    study = get_study(name)
    spec = study.spec(preset, seed, kind)
    settings = study.eval_settings()
    path, record = result_file(preset, seed, study, kind), load_run(preset, seed, study, kind)
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
        if after_point is not None:
            after_point()
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
          progress: bool = True, device=None, after_run=None, after_point=None) -> dict:
    """Make (or continue) every run of ``plan`` (default: the study's own) in order, then summarize what is there;
    ``after_run(summary)`` is called after each run (the command line draws the tables there), ``after_point()``
    after each evaluation (the command line rewrites progress.md there)."""
    st = get_study(name)
    made = 0
    for preset, seed, kind in map(_entry, plan or st.plan):
        if is_finished(load_run(preset, seed, st.name, kind), preset, st, kind):
            if kind == "budget" and not samples_file(preset, seed, st.name).is_file():
                save_samples(preset, seed, st.name)  # runs finished before grids were saved
            continue
        if max_runs is not None and made >= max_runs:
            break
        run_one(preset, seed, st, kind, progress, device, after_point)
        if kind == "budget":
            save_samples(preset, seed, st.name)
        made += 1
        if after_run is not None:
            after_run(summarize(st.name))
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


# --- minutes on an idle machine, and where two curves cross ---------------------------------------------------

def bench_file(name: str = "cpu") -> Path:
    return study_dir(name) / "bench.json"


def study_presets(name: str | Study = "cpu") -> list[str]:
    """Every preset of the study's plan, in the order the table shows them."""
    planned = {preset for preset, *_ in get_study(name).plan}
    return [p for p in ORDER + LEAVE_ONE_OUT if p in planned]


def write_bench(name: str | Study = "cpu", repeats: int = 3, device=None) -> dict:
    """Time a training step of every preset of the study (``course_utils.evaluation.bench``, rounds going round the
    presets) and save it as results/study/<name>/bench.json: the study's minutes on an idle machine are its steps
    times these seconds per step. Run it on an otherwise idle machine. (The bench times the default schedule and
    epsilon-prediction: the network and so a step's cost are the same under the best recipe's v-prediction.)"""
    from course_utils.evaluation.bench import bench
    result = bench(study_presets(name), repeats=repeats, samples=2, device=device)  # the study uses the training speed
    atomic_write_text(bench_file(get_study(name).name), json.dumps(result, indent=1))
    return result


def load_bench(name: str = "cpu") -> dict | None:
    """The study's bench.json (``write_bench``), or None when there is none."""
    f = bench_file(name)
    return json.loads(f.read_text()) if f.is_file() else None


def seconds_per_step(name: str = "cpu", bench: dict | None = None) -> dict[str, float] | None:
    """{preset: seconds per training step} from the study's bench.json (or ``bench``), or None when there is none."""
    bench = bench or load_bench(name)
    return None if bench is None else {r["name"]: 1 / r["train_steps_per_s"] for r in bench["presets"]}


def mean_curve(records: list[dict], preset: str) -> list[dict]:
    """``preset``'s FID against training compute: the mean over its seeds at every step all of them evaluated."""
    mine = [r for r in records if r["preset"] == preset]
    if not mine:
        return []
    steps = sorted(set.intersection(*[{p["step"] for p in r["points"]} for r in mine]))
    out = []
    for s in steps:
        pts = [point_at(r, s) for r in mine]
        out.append({"step": s, "tflop": s * mine[0]["train_gflops_per_step"] / 1e3,
                    "fid": statistics.fmean(p["fid"] for p in pts), "seeds": len(pts),
                    "finished": all(p.get("finished", True) for p in pts)})
    return out


def _loglog(curve: list[dict], x: float) -> float:
    """log FID at compute ``x`` on the straight lines between a curve's points in log-log."""
    for p, q in zip(curve, curve[1:]):
        if p["tflop"] <= x <= q["tflop"]:
            w = (math.log(x) - math.log(p["tflop"])) / (math.log(q["tflop"]) - math.log(p["tflop"]))
            return (1 - w) * math.log(p["fid"]) + w * math.log(q["fid"])
    raise ValueError(f"{x} TFLOP lies outside the curve")


def _power_fit(curve: list[dict]) -> tuple[float, float]:
    """(slope, intercept) of log FID against log TFLOP, least squares."""
    xs, ys = [math.log(p["tflop"]) for p in curve], [math.log(p["fid"]) for p in curve]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    return slope, my - slope * mx


def crossover(records: list[dict], a: str = "baseline", b: str = "optimized", fit_points: int = 3) -> dict | None:
    """At what training compute does ``b``'s FID curve pass below ``a``'s?

    Both curves are the mean over seeds at each evaluated step, joined by straight lines in log-log (FID against
    TFLOP). Where they cross inside the compute both reached, that is the answer (``"kind": "measured"``). Where
    ``b`` is better wherever both were measured, the answer is "already at the start" (``"from_start"``). Where
    ``b`` is still worse at the end, a power law FID = c·TFLOP^slope is fitted to each curve's last
    ``fit_points`` points and the two fits are solved for their crossing (``"extrapolated"``: an extrapolation,
    not a measurement); when ``b``'s fit does not fall faster than ``a``'s, no crossing lies ahead on these fits
    (``"none_ahead"``). Mid-run points of a decaying learning rate are flagged (``mid_run``): they are not what a
    run finished at that compute would reach. None when a curve has < 2 points.
    """
    ca, cb = mean_curve(records, a), mean_curve(records, b)
    if len(ca) < 2 or len(cb) < 2:
        return None
    lo, hi = max(ca[0]["tflop"], cb[0]["tflop"]), min(ca[-1]["tflop"], cb[-1]["tflop"])
    out = {"a": a, "b": b, "seeds": {a: ca[0]["seeds"], b: cb[0]["seeds"]}, "overlap_tflop": [lo, hi],
           "mid_run": not all(p["finished"] for p in ca + cb)}
    if lo >= hi:
        return {**out, "kind": "no_overlap"}
    xs = sorted({p["tflop"] for p in ca + cb if lo <= p["tflop"] <= hi} | {lo, hi})
    gaps = [(x, _loglog(cb, x) - _loglog(ca, x)) for x in xs]  # < 0: b has the lower FID there
    out["fid_ratio_at_end"] = math.exp(gaps[-1][1])
    if all(g < 0 for _, g in gaps):
        return {**out, "kind": "from_start", "tflop": lo}
    for (x0, g0), (x1, g1) in zip(gaps, gaps[1:]):
        if g0 >= 0 > g1:  # b passes a between x0 and x1 (the last such pass counts if they cross twice)
            out.update(kind="measured", tflop=math.exp(math.log(x0) + (math.log(x1) - math.log(x0)) * g0 / (g0 - g1)))
    if out.get("kind") == "measured" and gaps[-1][1] < 0:
        return out
    sa, ia = _power_fit(ca[-fit_points:])
    sb, ib = _power_fit(cb[-fit_points:])
    out.update(fit={a: {"slope": sa, "points": len(ca[-fit_points:])}, b: {"slope": sb, "points": len(cb[-fit_points:])}})
    if sb < sa:
        return {**out, "kind": "extrapolated", "tflop": math.exp((ib - ia) / (sa - sb))}
    return {**out, "kind": "none_ahead"}


def summarize(name: str = "cpu") -> dict:
    """Both views per preset (mean ± sd over seeds): FID at equal steps (the reference steps: a finished run of
    that length where the study made one, else the budget run's point there) and at equal compute (each run's
    last milestone); written to results/study/<name>/summary.json (``course_utils.reports.write_study`` draws it)."""
    records, short = load_all(name), load_all(name, "steps")
    if not records:
        return {"rows": []}
    bench = load_bench(name)
    per_step = seconds_per_step(name, bench)
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
                if per_step and preset in per_step:  # minutes on an idle machine: steps x the bench's s/step
                    row[view]["idle_minutes"] = row[view]["step"] * per_step[preset] / 60
        rows.append(row)
    out = {"name": name, "settings": settings, "rows": rows, "runs": len(records)}
    if short:
        out["equal_step_runs"] = len(short)
    if per_step:
        out["bench"] = {"hardware": bench.get("hardware"), "threads": bench.get("threads"),
                        "device": bench.get("device"), "seconds_per_step": per_step}
    cross = crossover(records)
    if cross is not None:
        if per_step and "tflop" in cross and "optimized" in per_step:
            steps = cross["tflop"] * 1e3 / train_gflops("optimized")
            cross["optimized_idle_minutes"] = steps * per_step["optimized"] / 60
        out["crossover"] = cross
    atomic_write_text(study_dir(name) / "summary.json", json.dumps(out, indent=1))
    return out


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
