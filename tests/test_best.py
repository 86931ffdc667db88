"""`python -m course_utils best-cpu` at a tiny size: it trains on a cosine learning rate, resumes, refuses a run of
another recipe, and ships fp16 EMA weights whose BatchNorm statistics were recomputed, with a manifest."""
import json

import pytest
import torch

import course_utils as cu

from course_utils.checkpoints import load_checkpoint, read_checkpoint
from course_utils.errors import CourseError
from course_utils.study import best, compute

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]


def test_best_cpu_tiny(tmp_path, capsys):
    recipe = {**best.BEST, "preset": "baseline", "steps": 4}
    ck, run = tmp_path / "ck", tmp_path / "run"
    m = best.ship_best(recipe, n=8, checkpoints=ck, folder=run, progress=False, command="test")
    assert m["recipe"] == recipe and m["steps"] == 4 and m["command"] == "test" and m["weights"] == "ema"
    assert {"fid", "fid_floor", "dark_fraction"} <= set(m["metrics"]) and m["fid_to_floor"] > 0
    tensors, header = read_checkpoint(ck / "best-cpu.safetensors")
    assert {v.dtype for v in tensors.values() if v.is_floating_point()} == {torch.float16}
    assert json.loads((ck / "best-cpu.json").read_text())["file"] == "best-cpu.safetensors"
    model, _ = load_checkpoint(ck / "best-cpu.safetensors")  # the file's own config: its schedule, its target
    assert model.config.zero_terminal_snr and model.config.prediction == "v" and m["config"]["prediction"] == "v"
    # the shipped BatchNorm statistics are recomputed for the EMA weights, not those the training left
    trained, _ = load_checkpoint(run / "model.safetensors", model=cu.build("baseline", **recipe["overrides"]),
                                 use_ema=True)
    sd, sd_trained = model.state_dict(), trained.state_dict()
    key = next(k for k in sd if k.endswith("running_mean"))
    assert not torch.allclose(sd[key], sd_trained[key].half().float(), atol=1e-3), key
    _, run_header = read_checkpoint(run / "model.safetensors")
    assert run_header["meta"]["spec"] == best.spec_of(recipe).to_dict()
    assert run_header["meta"]["spec"]["recipe"]["lr_schedule"] == "cosine"
    # a second call reuses the finished run; another recipe is refused with a fix
    again = best.train_best(recipe, folder=run, progress=False)
    assert again[1].steps == 4
    with pytest.raises(CourseError, match="another recipe"):
        best.train_best({**recipe, "lr": 2e-3}, folder=run, progress=False)


def test_the_conditional_model_ships_with_its_guidance_sweep(tmp_path):
    recipe = {**best.COND, "preset": "optimized_cond", "steps": 2}
    ck, run = tmp_path / "ck", tmp_path / "run"
    m = best.ship_best(recipe, n=4, checkpoints=ck, folder=run, progress=False, command="test", name=best.COND_NAME,
                       sweep={"n_per_class": 1, "steps": 2})
    assert m["file"] == "optimized_cond-final.safetensors" and m["config"]["num_classes"] == 10
    assert [r["w"] for r in m["guidance"]["rows"]] == [0.0, 0.5, 1.0, 2.0, 4.0]
    assert m["guidance"]["how"] == {**best.SWEEP, "n_per_class": 1, "steps": 2}
    assert m["guidance_command"].endswith("--sampler ddim --steps 2 --eta 1 -n 10")
    assert 0 <= m["guidance"]["real"]["accuracy"] <= 1
    model, _ = load_checkpoint(ck / "optimized_cond-final.safetensors")
    assert model.config.num_classes == 10 and model.config.prediction == "v"
    cached = json.loads((run / "guidance-sweep.json").read_text())  # a second ship reuses the sweep
    assert [r["fid"] for r in cached["sweep"]["rows"]] == [r["fid"] for r in m["guidance"]["rows"]]


def test_study_recipe_options():
    assert compute.make_recipe() == compute.RECIPE  # the default adds no key: old runs keep their settings
    assert compute.make_recipe(lr_schedule="cosine", batch_size=256) == {**compute.RECIPE, "batch_size": 256,
                                                                          "lr_schedule": "cosine"}
    with pytest.raises(CourseError, match="choose one of"):
        compute.make_recipe(lr_schedule="step")


def test_cosine_lr_decays_to_zero_over_the_whole_run_across_segments():
    from course_utils.train import LRSchedule
    sched = LRSchedule.cosine(total=100)
    assert sched.lr_at(0, 10, 1.0) == pytest.approx(1.0)        # a segment of 10 steps still sees the run's 100
    assert sched.lr_at(50, 60, 1.0) == pytest.approx(0.5)
    assert sched.lr_at(99, 100, 1.0) < 1e-3
