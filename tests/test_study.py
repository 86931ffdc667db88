"""The compute-aware study (course_utils.study.compute) on a tiny budget, and the sampler comparison."""
import json
import math

import pytest

import course_utils as cu

from course_utils import reports
from course_utils.evaluation import samplers
from course_utils.study import compute


@pytest.fixture()
def tiny_study(tmp_path, monkeypatch):
    monkeypatch.setattr(compute, "study_dir", lambda name="cpu": tmp_path / "results" / name)
    monkeypatch.setenv("COURSE_RUNS_DIR", str(tmp_path / "runs"))
    return tmp_path


def test_equal_compute_gives_cheaper_rungs_more_steps():
    assert compute.CPU.steps_for("optimized") == compute.REFERENCE_STEPS
    ratio = compute.CPU.steps_for("baseline") / compute.CPU.steps_for("optimized")
    assert 11.5 < ratio < 13.5
    assert compute.CPU.milestones("optimized") == [125, 250, 500, 1000]
    m = compute.CPU.milestones("baseline")
    assert m[0] == 1000 and m[-1] == compute.CPU.steps_for("baseline") and len(m) == 5


def test_the_best_recipe_study_is_three_times_the_first_and_evaluates_at_1000_and_3000_steps():
    best = compute.STUDIES["cpu-best-recipe"]
    assert best.budget_gflop() == pytest.approx(3 * compute.CPU.budget_gflop()) and best.budget_gflop() / 1e3 >= 300
    assert best.milestones("optimized") == [375, 750, 1000, 1500, 3000]
    m = best.milestones("baseline")
    assert {1000, 3000} <= set(m) and m[-1] == best.steps_for("baseline")
    spec = best.spec("baseline", 1)
    assert spec.config.zero_terminal_snr and spec.config.prediction == "v" and spec.recipe.lr_schedule == "cosine"
    assert best.spec("baseline", 1, "steps").steps == 3000 and best.milestones("baseline", "steps") == [3000]
    # every leave-one-out preset that is a network of its own is in the plan; no_extra_skip is the residual rung
    planned = {e[0] for e in best.plan}
    assert set(compute.LEAVE_ONE_OUT) <= planned and "no_extra_skip" not in planned


def tiny(name, **changes):
    ev = {"n": 16, "sampler": "ddim", "steps": 2, "eta": 1.0, "batchnorm": "recomputed"}
    return compute.Study(name, **{"reference_steps": 4, "fractions": (0.5, 1.0), "evaluation": ev, **changes})


@pytest.mark.slow
def test_a_tiny_study_is_resumable_and_summarized(tiny_study):
    st = tiny("t")
    calls = []
    rec = compute.run_one("optimized", 0, st, progress=False, device="cpu", after_point=lambda: calls.append(1))
    assert [p["step"] for p in rec["points"]] == [2, 4] and len(calls) == 2  # told after each saved evaluation
    assert rec["points"][1]["train_tflop"] == pytest.approx(4 * 102.48 / 1e3, rel=1e-3)
    saved = json.loads((tiny_study / "results" / "t" / "runs" / "optimized-seed0.json").read_text())
    assert saved["points"][1]["weights"] == "ema" and saved["points"][1]["sampler"] == "ddim"
    again = compute.run_one("optimized", 0, st, progress=False, device="cpu", after_point=lambda: calls.append(1))
    assert again["points"] == rec["points"] and len(calls) == 2  # nothing trained or evaluated again
    base = compute.run_one("baseline", 0, st, progress=False, device="cpu")
    assert base["steps"] == st.steps_for("baseline") and base["points"][-1]["step"] == base["steps"]
    out = compute.summarize("t")
    reports.write_study("t")
    rows = {r["preset"]: r for r in out["rows"]}
    assert rows["baseline"]["equal_steps"]["step"] == 4 and rows["baseline"]["equal_compute"]["step"] == base["steps"]
    assert (tiny_study / "results" / "t" / "curves.png").stat().st_size > 1000
    assert "FID at equal compute" in (tiny_study / "results" / "t" / "table.md").read_text()
    assert "idle min" not in (tiny_study / "results" / "t" / "table.md").read_text()  # no bench yet
    # the bench of the study's presets gives each view its minutes on an idle machine, and the curves a third panel
    bench = compute.write_bench(tiny("t", plan=(("baseline", 0), ("optimized", 0))), repeats=1, device="cpu")
    assert [r["name"] for r in bench["presets"]] == ["baseline", "optimized"]
    per_step = compute.seconds_per_step("t")
    out = compute.summarize("t")
    reports.write_study("t")
    rows = {r["preset"]: r for r in out["rows"]}
    assert rows["baseline"]["equal_compute"]["idle_minutes"] == pytest.approx(base["steps"] * per_step["baseline"] / 60)
    assert "idle min" in (tiny_study / "results" / "t" / "table.md").read_text()
    assert out["crossover"]["a"] == "baseline" and out["crossover"]["overlap_tflop"][0] > 0
    # best-cpu re-chosen from a study: the finished runs within the minutes, lowest FID first, and a why naming it
    from course_utils.study import best
    cands = best.study_candidates("t", max_minutes=1e6)
    assert {(c["preset"], c["steps"]) for c in cands} == {("optimized", 4), ("baseline", base["steps"])}
    assert [c["fid"] for c in cands] == sorted(c["fid"] for c in cands)
    choice = best.study_choice("t", max_minutes=1e6)
    assert choice["recipe"]["preset"] == cands[0]["preset"] and choice["recipe"]["steps"] == cands[0]["steps"]
    assert f"results/study/t: {cands[0]['preset']}, {cands[0]['steps']:,} steps" in choice["why"]
    with pytest.raises(cu.CourseError, match="no finished run"):
        best.study_choice("t", max_minutes=1e-9)
    with pytest.raises(Exception, match="other settings"):
        compute.run_one("optimized", 0, tiny("t", reference_steps=8), progress=False, device="cpu")


@pytest.mark.slow
def test_a_cosine_study_labels_mid_run_points_and_takes_equal_steps_from_finished_runs(tiny_study):
    st = tiny("cos", recipe=compute.make_recipe(lr_schedule="cosine"), overrides=compute.BEST_OVERRIDES,
              extra_steps=(4,))
    cos = compute.run_one("wide_channels", 0, st, progress=False, device="cpu")
    assert cos["spec"]["recipe"]["lr_schedule"] == "cosine" and cos["points"][-1]["step"] == cos["steps"] == 9
    assert [(p["step"], p["finished"]) for p in cos["points"]] == [(4, False), (9, True)]  # 4: half and equal steps
    assert cos["points"][0]["lr_fraction"] == pytest.approx(0.5 * (1 + math.cos(math.pi * 4 / 9)))
    out = compute.summarize("cos")
    assert out["rows"][0]["width_part"] and "wide_channels (width part)" in reports.study_table(out)
    assert out["rows"][0]["equal_steps"]["finished"] is False and "(cosine)" in reports.study_table(out)
    assert "122.5*" not in reports.study_table(out) and "* marks a mid-run point" in reports.study_table(out)
    short = compute.run_one("wide_channels", 0, st, kind="steps", progress=False, device="cpu")
    assert short["steps"] == 4 and short["points"][-1]["finished"]
    out = compute.summarize("cos")
    assert "finished" not in out["rows"][0]["equal_steps"] and out["equal_step_runs"] == 1


@pytest.mark.slow
def test_compare_samplers_writes_a_table(tmp_path):
    res = samplers.compare_samplers("baseline", n=16, steps=(2, 5), etas=(0.0,), out=tmp_path, progress=False)
    reports.write_samplers(res, tmp_path)
    assert [r["label"] for r in res["rows"]] == ["DDPM, 150 steps", "DDIM, 2 steps, eta 0", "DDIM, 5 steps, eta 0"]
    assert res["rows"][0]["fid_vs_ddpm"] == 1.0 and res["rows"][1]["speedup_vs_ddpm"] > 5
    assert (tmp_path / "table.md").read_text().count("| DDIM") == 2 and (tmp_path / "fid_vs_steps.png").is_file()


@pytest.mark.slow
def test_compare_schedules_tiny(tmp_path):
    from course_utils.study import schedules
    res = schedules.compare_schedules(["linear", "linear_zero_snr"], seeds=(0, 1), steps=2, n=16, out=tmp_path,
                                      progress=False)
    assert [r["schedule"] for r in res["rows"]] == ["linear", "linear_zero_snr"]
    row = res["rows"][1]
    assert row["seeds"] == [0, 1] and len(row["noise_start"]["fid"]) == 2
    assert "fid" not in row["true_start"] and 0 <= row["true_start"]["dark_fraction"][0] <= 1
    saved = json.loads((tmp_path / "runs" / "linear_zero_snr-seed1.json").read_text())
    assert saved["config"] == {"schedule": "linear", "zero_terminal_snr": True, "prediction": "v"}
    assert (tmp_path / "samples" / "linear-seed0-true-start.png").is_file()
    assert "| linear_zero_snr |" in (tmp_path / "table.md").read_text()
    again = schedules.compare_schedules(["linear"], seeds=(0,), steps=2, n=16, out=tmp_path, progress=False)
    seed0 = json.loads((tmp_path / "runs" / "linear-seed0.json").read_text())
    assert again["rows"][0]["noise_start"]["fid"][0] == seed0["noise_start"]["fid"]  # reused, not trained again
    with pytest.raises(Exception, match="other settings"):
        schedules.run_one("linear", 0, steps=3, n=16, out=tmp_path, progress=False)


def curve_records(**curves):
    """Study records with the given mean FID curves: {preset: [(step, fid), ...]} (1 GFLOP per step: TFLOP = step/1000)."""
    return [{"preset": p, "seed": 0, "train_gflops_per_step": 1.0,
             "points": [{"step": s, "fid": f, "finished": True} for s, f in pts]} for p, pts in curves.items()]


def test_the_crossover_is_found_inside_the_curves_between_the_right_points():
    # optimized (b) worse at 1 and 2 TFLOP, better at 4: it passes baseline between 2 and 4, where the log gaps
    # (log 120/100 at 2, log 80/90 at 4) meet zero
    recs = curve_records(baseline=[(1000, 110), (2000, 100), (4000, 90)], optimized=[(1000, 150), (2000, 120), (4000, 80)])
    c = compute.crossover(recs)
    g0, g1 = math.log(120 / 100), math.log(80 / 90)
    expect = math.exp(math.log(2) + math.log(2) * g0 / (g0 - g1))
    assert c["kind"] == "measured" and c["tflop"] == pytest.approx(expect) and 2 < c["tflop"] < 4
    assert "passes `baseline` at about 3 TFLOP" in reports.crossover_text({"crossover": c})


def test_the_crossover_outside_the_curves_is_an_extrapolation_or_none():
    # b better everywhere both were measured
    assert compute.crossover(curve_records(baseline=[(1000, 100), (2000, 90)],
                                           optimized=[(1000, 80), (2000, 70)]))["kind"] == "from_start"
    # b worse at the end but falling faster: power laws FID = c x^s cross where the fits meet
    recs = curve_records(baseline=[(1000, 100), (2000, 100 * 2 ** -0.1), (4000, 100 * 4 ** -0.1)],
                         optimized=[(1000, 200), (2000, 200 * 2 ** -0.5), (4000, 200 * 4 ** -0.5)])
    c = compute.crossover(recs)
    assert c["kind"] == "extrapolated" and c["tflop"] == pytest.approx(2 ** (1 / 0.4))
    assert c["fit"]["optimized"]["slope"] == pytest.approx(-0.5)
    assert "Extrapolated, not measured" in reports.crossover_text({"crossover": c})
    # b worse and flatter: nothing ahead
    flat = curve_records(baseline=[(1000, 100), (2000, 80), (4000, 64)], optimized=[(1000, 200), (2000, 190), (4000, 180)])
    assert compute.crossover(flat)["kind"] == "none_ahead"
    assert compute.crossover(curve_records(baseline=[(1000, 100)], optimized=[(1000, 90), (2000, 80)])) is None


def test_the_first_study_has_no_measured_crossover_and_says_it_extrapolates():
    c = compute.crossover(compute.load_all("cpu"))
    assert c["seeds"] == {"baseline": 3, "optimized": 3} and not c["mid_run"]
    # optimized is still worse at the budget's edge: whatever the text says about beyond it is labelled a guess
    assert c["fid_ratio_at_end"] > 1 and c["kind"] in ("extrapolated", "none_ahead")
    assert c["overlap_tflop"][1] == pytest.approx(compute.CPU.budget_gflop() / 1e3, rel=1e-4)


def test_the_extra_seeds_are_the_rungs_near_the_threshold_and_the_leave_one_outs_within_it():
    summary = compute.load_summary("cpu")
    sd = reports.run_spread(summary, "equal_compute"), reports.run_spread(summary, "equal_steps")
    near = {st["to"] for st in reports.steps_of_ladder(summary)
            if any(abs(abs(st[v]["change"]) - 2 * s) <= 2 * s for v, s in zip(("equal_compute", "equal_steps"), sd))}
    single = {r["preset"] for r in summary["rows"] if len(r["seeds"]) == 1}
    plan = reports.extra_seed_plan(summary)
    # the first study's constant learning rate: a budget run serves both views, so no separate equal-step runs
    assert plan and {k for _, _, k in plan} == {"budget"} and {s for _, s, _ in plan} == {1}
    assert {p for p, _, _ in plan} == near & single and "groupnorm" not in near  # +27.8 and +35.7: far from it
    # under a cosine schedule the equal-step view asks for the finished equal-step run; a leave-one-out preset
    # within the threshold of optimized gets a second seed, one beyond it does not
    rows = [{"preset": "optimized", "seeds": [0, 1, 2], "equal_compute": {"fid": [40.0, 2.0], "fids": [38.0, 40.0, 42.0]},
             "equal_steps": {"fid": [40.0, 2.0], "fids": [38.0, 40.0, 42.0]}},
            {"preset": "no_gelu", "seeds": [0], "equal_compute": {"fid": [43.0, float("nan")], "fids": [43.0]}},
            {"preset": "no_residual", "seeds": [0], "equal_compute": {"fid": [60.0, float("nan")], "fids": [60.0]}}]
    cos = {"settings": {"recipe": {"lr_schedule": "cosine"}}, "rows": rows}
    assert reports.extra_seed_plan(cos) == [("no_gelu", 1, "budget")]


def _choose(monkeypatch, groups: dict, per_step: dict, max_minutes: float = 30):
    """best.study_choice over finished end points given as {(preset, steps, kind): [FIDs]} (the decision only; the
    runs behind them are the real study's business)."""
    from course_utils.study import best
    monkeypatch.setattr(best, "_groups", lambda name: groups)
    monkeypatch.setattr(best, "_per_step", lambda name: per_step)
    return best.study_choice("cpu-best-recipe", max_minutes)


def test_best_cpu_is_replaced_only_by_a_run_within_the_minutes_that_beats_it_by_two_spreads(monkeypatch, tmp_path):
    from course_utils.study import best
    per_step = {"optimized": 0.66, "baseline": 0.072, "gelu": 0.5}  # seconds per step
    inc = ("optimized", 3000, "budget")  # today's best-cpu: 33 min on this clock, over the 30
    # a candidate 5 FID better, with a pooled spread of 0.7 (threshold 1.4), replaces it, and the why names its row
    c = _choose(monkeypatch, {inc: [35.0, 36.0], ("gelu", 3000, "steps"): [30.0, 31.0]}, per_step)
    assert not c["keep"] and c["recipe"]["preset"] == "gelu" and c["recipe"]["overrides"]["prediction"] == "v"
    assert "gelu, 3,000 steps (its finished equal-step run), FID 30.5 ± 0.7 over 2 seeds" in c["why"]
    assert "beats today's best-cpu (35.5)" in c["why"] and c["row"]["idle_minutes"] == pytest.approx(25.0)
    # one within two spreads keeps today's best-cpu, whose row the why names
    c = _choose(monkeypatch, {inc: [35.0, 36.0], ("gelu", 3000, "steps"): [34.0, 35.0]}, per_step)
    assert c["keep"] and c["recipe"] == best.BEST and c["row"]["preset"] == "optimized"
    assert c["why"].startswith("kept: today's best-cpu is results/study/cpu-best-recipe's row optimized, 3,000 steps")
    assert "within two seed-to-seed spreads (1.4)" in c["why"]
    # a worse one keeps it too, and says it is worse
    c = _choose(monkeypatch, {inc: [35.0, 36.0], ("baseline", 3000, "steps"): [54.0, 55.0]}, per_step)
    assert c["keep"] and "baseline at 3,000 steps (54.5, 3.6 min), is worse (+19.0 FID)" in c["why"]
    # nothing within the minutes: a clear error
    with pytest.raises(cu.CourseError, match="no finished run .* within 30 min"):
        _choose(monkeypatch, {inc: [35.0, 36.0]}, per_step)
    # a kept choice is written into the shipped manifest without retraining; a manifest of another recipe is refused
    (tmp_path / "best-cpu.json").write_text(json.dumps({"recipe": best.BEST, "why": "old"}))
    f = best.name_study_row(c, tmp_path)
    m = json.loads(f.read_text())
    assert m["why"] == c["why"] and m["study_row"]["preset"] == "optimized" and m["recipe"] == best.BEST
    (tmp_path / "best-cpu.json").write_text(json.dumps({"recipe": {**best.BEST, "steps": 10}, "why": "old"}))
    with pytest.raises(cu.CourseError, match="another recipe"):
        best.name_study_row(c, tmp_path)


def test_the_verdict_table_marks_a_change_that_rests_on_a_mid_run_point():
    def view(fids, finished):
        return {"fid": [sum(fids) / len(fids), 1.0], "fids": fids, "finished": finished}
    rows = [{"preset": "baseline", "equal_steps": view([49.0, 51.0], True), "equal_compute": view([37.0, 38.0], True)},
            {"preset": "upsample", "equal_steps": view([40.0], False), "equal_compute": view([37.5], True)}]
    text = reports.verdicts_table({"rows": rows})
    line = next(x for x in text.splitlines() if x.startswith("| baseline → upsample"))
    assert line.split(" | ")[2:] == ["-10.0*", "better", "+0.0", "within noise |"], line
    assert "A * marks a change with a mid-run point" in text
    rows[1]["equal_steps"]["finished"] = True  # both finished: no mark, no note
    assert "*" not in reports.verdicts_table({"rows": rows})


def test_the_leave_one_out_table_measures_each_removal_from_optimized_and_reuses_residual_for_the_extra_skip():
    def view(fids, finished=True):
        return {"fid": [sum(fids) / len(fids), 1.0], "fids": fids, "finished": finished}
    rows = [{"preset": "optimized", "equal_steps": view([35.0, 36.0]), "equal_compute": view([35.0, 36.0])},
            {"preset": "residual", "equal_steps": view([40.0], False), "equal_compute": view([40.5])}]
    assert "leave one out" not in reports.verdicts_table({"rows": rows})  # the ladder's own step, nothing new
    rows += [{"preset": "no_gelu", "equal_compute": view([35.8])},
             {"preset": "no_sinusoidal", "equal_steps": view([33.0]), "equal_compute": view([34.0])}]
    steps = {st["to"]: st for st in reports.leave_one_out_steps({"rows": rows})}
    assert set(steps) == {"no_extra_skip", "no_gelu", "no_sinusoidal"}
    assert steps["no_extra_skip"]["row"] == "residual" and steps["no_extra_skip"]["equal_compute"]["verdict"] == "worse"
    assert steps["no_gelu"]["equal_compute"]["verdict"] == "within noise" and "equal_steps" not in steps["no_gelu"]
    assert round(steps["no_sinusoidal"]["equal_steps"]["change"], 6) == -2.5
    assert steps["no_sinusoidal"]["equal_steps"]["verdict"] == "better"  # the model got better without it
    text = reports.verdicts_table({"rows": rows})
    line = next(x for x in text.splitlines() if x.startswith("| optimized → no_extra_skip"))
    assert line == "| optimized → no_extra_skip (= residual) | extra_skip | +4.5* | worse | +5.0 | worse |", line
    assert "| optimized → no_gelu | gelu | — | — | +0.3 | within noise |" in text
