"""The one cache rule (course_utils.study.runspec): a stored result is reused only for the same run and the same
evaluation settings, and every shipped result carries the run and settings it was made with, so the shipped
commands find all of them again and train nothing."""
import dataclasses
import json
import shutil

import pytest

from course_utils import reports
from course_utils.evaluation.evaluate import EvalSettings
from course_utils.paths import results_dir
from course_utils.study import compute, recipe, schedules
from course_utils.study.runspec import Recipe, RunSpec, cached_point, same_settings


@pytest.fixture()
def no_training(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("a shipped result was not reused")
    monkeypatch.setattr(RunSpec, "train_to", refuse)
    monkeypatch.setattr(RunSpec, "evaluate", refuse)


def test_a_changed_setting_never_reuses_a_result():
    spec = RunSpec.of("baseline", 100, 0, Recipe(ema=0.999))
    ev = EvalSettings(n=500)
    record = {"spec": spec.to_dict(), "points": [{"step": 100, "eval": ev.to_dict()}]}
    assert cached_point(record, spec, 100, ev) is not None
    assert cached_point(record, dataclasses.replace(spec, label="another name"), 100, ev) is not None  # a name only
    changed = [RunSpec.of("baseline", 100, 1, Recipe(ema=0.999)),                       # seed
               RunSpec.of("baseline", 200, 0, Recipe(ema=0.999)),                       # length
               RunSpec.of("baseline", 100, 0, Recipe(ema=0.99)),                        # EMA
               RunSpec.of("baseline", 100, 0, Recipe(lr=2e-3)),                         # learning rate
               RunSpec.of("baseline", 100, 0, Recipe(lr_schedule="cosine")),            # its schedule
               RunSpec.of("baseline", 100, 0, Recipe(), {"act": "gelu"}),               # the network
               RunSpec.of("baseline", 100, 0, Recipe(), {"prediction": "v"})]           # the diffusion settings
    for other in changed:
        assert not same_settings(record, other) and other.key() != spec.key(), other
    for other_ev in (EvalSettings(n=400), EvalSettings(steps=25), EvalSettings(eta=0.0), EvalSettings(seed=1),
                     EvalSettings(clip_x0=True), EvalSettings(batchnorm="averaged")):
        assert cached_point(record, spec, 100, other_ev) is None, other_ev
    assert cached_point(record, spec, 50, ev) is None  # another step
    assert cached_point({"points": record["points"]}, spec, 100, ev) is None  # no spec: never reused


def test_the_shipped_study_is_read_and_every_point_is_valid(no_training):
    """The first study's records (written before runs were RunSpecs) are read with their spec, and a second run of
    the study finds every milestone."""
    for preset, seed in compute.PLAN:
        rec = compute.load_run(preset, seed, "cpu")
        assert rec is not None and compute.is_finished(rec, preset, "cpu"), (preset, seed)
        spec = compute.STUDIES["cpu"].spec(preset, seed)
        assert same_settings(rec, spec)
        for m in compute.STUDIES["cpu"].milestones(preset):
            assert cached_point(rec, spec, m, compute.STUDIES["cpu"].eval_settings()) is not None, (preset, seed, m)


def test_the_shipped_schedule_comparison_is_found_again(tmp_path, no_training):
    shipped = schedules.schedules_dir()
    shutil.copytree(shipped, tmp_path / "out")
    res = schedules.compare_schedules(out=tmp_path / "out", progress=False)
    assert (tmp_path / "out" / "table.md").read_text() == (shipped / "table.md").read_text()
    assert json.loads((tmp_path / "out" / "results.json").read_text())["rows"] == res["rows"]


def test_the_shipped_ema_check_rows_are_valid_under_the_cache_rule(tmp_path, no_training):
    """The shipped rows (results/recipe/baseline-ema-batchnorm) carry their run and settings: the shipped command
    finds every one of them and trains nothing."""
    shipped = results_dir() / "recipe" / "baseline-ema-batchnorm"
    shutil.copytree(shipped, tmp_path / "out")
    res = recipe.ema_check(out=tmp_path / "out", progress=False)
    assert [r["step"] for r in res["rows"]] == [1000, 2000, 4000]
    reports.write_ema(res, tmp_path / "out")
    assert (tmp_path / "out" / "table.md").read_text() == (shipped / "table.md").read_text()


def test_the_shipped_sampler_comparison_is_found_again_and_another_model_is_not(tmp_path, monkeypatch):
    from course_utils.evaluation import samplers
    shipped = samplers.samplers_dir("optimized-final")
    shutil.copytree(shipped, tmp_path / "out")
    saved = json.loads((shipped / "results.json").read_text())

    def refuse(*a, **k):
        raise AssertionError("a shipped row was not reused")
    monkeypatch.setattr(samplers, "evaluate", refuse)
    res = samplers.compare_samplers("optimized-final", n=saved["n"], etas=(0.0, 1.0), out=tmp_path / "out",
                                    progress=False)
    assert [r["fid"] for r in res["rows"]] == [r["fid"] for r in saved["rows"]]
    # the same name, another checkpoint: nothing is reused
    with pytest.raises(AssertionError, match="not reused"):
        samplers.compare_samplers("optimized-final", checkpoint=results_dir().parent / "checkpoints" / "best-cpu.safetensors",
                                  n=saved["n"], etas=(0.0, 1.0), out=tmp_path / "out", progress=False)
