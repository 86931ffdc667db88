"""The compute-aware study (course_utils.study.compute) on a tiny budget, and the sampler comparison."""
import json
import math

import pytest

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
    rec = compute.run_one("optimized", 0, st, progress=False, device="cpu")
    assert [p["step"] for p in rec["points"]] == [2, 4]
    assert rec["points"][1]["train_tflop"] == pytest.approx(4 * 102.48 / 1e3, rel=1e-3)
    saved = json.loads((tiny_study / "results" / "t" / "runs" / "optimized-seed0.json").read_text())
    assert saved["points"][1]["weights"] == "ema" and saved["points"][1]["sampler"] == "ddim"
    again = compute.run_one("optimized", 0, st, progress=False, device="cpu")  # nothing trained or evaluated again
    assert again["points"] == rec["points"]
    base = compute.run_one("baseline", 0, st, progress=False, device="cpu")
    assert base["steps"] == st.steps_for("baseline") and base["points"][-1]["step"] == base["steps"]
    out = compute.summarize("t")
    reports.write_study("t")
    rows = {r["preset"]: r for r in out["rows"]}
    assert rows["baseline"]["equal_steps"]["step"] == 4 and rows["baseline"]["equal_compute"]["step"] == base["steps"]
    assert (tiny_study / "results" / "t" / "curves.png").stat().st_size > 1000
    assert "FID at equal compute" in (tiny_study / "results" / "t" / "table.md").read_text()
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
