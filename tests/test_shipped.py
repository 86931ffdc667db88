"""The shipped checkpoints and ablation results: complete, small, consistent with each other and with the
course's claims — and the claims re-measured live on fresh samples from the shipped weights."""
import json
import re
import shutil
from pathlib import Path

import pytest
import torch

from course_utils.study import ship
from course_utils.study.ablation import load_results
from course_utils.checkpoints import load_checkpoint, read_checkpoint
from course_utils.errors import CheckpointError
from course_utils.model.unet import ABLATED, LADDER, PRESETS

ROOT = Path(__file__).resolve().parents[1]
CK = ROOT / "checkpoints"
KEYS = {"command", "git_commit", "budget", "steps", "wall_seconds", "hardware", "final_loss", "metrics"}


def manifest(name: str) -> dict:
    return json.loads((CK / f"{name}.json").read_text())


def test_every_shipped_checkpoint_is_there_with_its_manifest():
    names = LADDER + [ship.FINAL_NAME, "classifier"]
    for name in names:
        assert (CK / f"{name}.safetensors").is_file(), name
        m = manifest(name)
        if name != "classifier":
            assert KEYS <= set(m), (name, KEYS - set(m))
            assert {"fid", "fid_floor", "kid", "kid_floor", "checkerboard", "checkerboard_real", "n"} <= set(m["metrics"])
    total = sum(p.stat().st_size for p in CK.glob("*.safetensors"))
    assert total <= 45e6, f"checkpoints/ holds {total / 1e6:.1f} MB, more than 45 MB"
    assert not [p.name for p in CK.glob("no_*")], "leave-one-out presets ship results, not weights"


def test_ladder_checkpoints_are_equal_step_fp16_weights():
    steps = {manifest(p)["steps"] for p in LADDER}
    assert steps == {ship.LADDER_STEPS}
    for p in LADDER:
        tensors, header = read_checkpoint(CK / f"{p}.safetensors")
        assert header["preset"] == p and header["meta"]["step"] == ship.LADDER_STEPS
        assert header["config"] == PRESETS[p].config.to_dict()
        assert all(k.startswith("model.") for k in tensors), "weights only: no optimizer state, no EMA"
        assert {v.dtype for v in tensors.values() if v.is_floating_point()} == {torch.float16}


def test_final_model_is_at_least_five_epochs_with_ema():
    m = manifest(ship.FINAL_NAME)
    assert m["steps"] >= 5 * 468 and m["ema_decay"] == ship.FINAL_EMA and m["weights"] == "ema"
    tensors, header = read_checkpoint(ship.shipped_final_path())
    assert header["preset"] == "optimized" and header["meta"]["weights"] == "ema"
    assert load_checkpoint(ship.shipped_final_path(), "optimized")[1]["weights"] == "ema", "reported as the EMA"
    assert m["fid_to_floor"] == round(m["metrics"]["fid"] / m["metrics"]["fid_floor"], 2)
    assert m["checkerboard_to_real"] <= 2.0


def test_the_results_state_the_final_fid_to_floor_ratio():
    m = manifest(ship.FINAL_NAME)
    text = re.sub(r"\s*<!--.*?-->", "", (ROOT / "docs" / "results.md").read_text(), flags=re.S)  # claim markers
    assert f"{m['fid_to_floor']:.1f}× its real-vs-real floor" in text


def test_ablation_covers_every_preset_with_two_seeds_at_the_ladder_steps():
    res = load_results("ladder")
    assert res is not None and res["steps"] == ship.LADDER_STEPS and res["seeds"] >= 2
    seeds = {}
    for r in res["runs"]:
        assert r["steps"] == ship.LADDER_STEPS
        seeds.setdefault(r["preset"], set()).add(r["seed"])
    assert set(seeds) == set(ABLATED) and all(len(s) >= 2 for s in seeds.values())
    for f in ("table.md", "losses.png", "samples.png", "summary.png"):
        assert (ROOT / "results" / "ablation" / "ladder" / f).is_file()
    # the shipped ladder checkpoints are the ablation's seed-0 runs
    for p in LADDER:
        run = next(r for r in res["runs"] if r["preset"] == p and r["seed"] == 0)
        assert manifest(p)["metrics"]["fid"] == run["fid"]


def test_optimized_beats_baseline_at_equal_steps_and_checkerboards_differ():
    by = {r["preset"]: r for r in load_results("ladder")["summary"]}
    base, opt = by["baseline"], by["optimized"]
    assert opt["fid"] < base["fid"]
    assert base["checkerboard"] > 3 * base["checkerboard_real"] and base["checkerboard"] > opt["checkerboard"]


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
def test_checkerboard_claims_hold_on_fresh_samples():
    """Re-measure the checkerboard ratios from the shipped weights (not the manifests) on new seeds."""
    from course_utils.data import load
    from course_utils.diffusion import sample
    from course_utils.evaluation.metrics import checkerboard_score
    real = checkerboard_score(load("test").images[:512])
    final, _ = load_checkpoint(ship.shipped_final_path(), "optimized")
    base, _ = load_checkpoint(CK / "baseline.safetensors", "baseline")
    assert checkerboard_score(sample(final, 64, seed=11)) <= 2 * real
    assert checkerboard_score(sample(base, 64, seed=11)) > 3 * real


def test_shipped_checkpoint_errors_are_clear(tmp_path):
    with pytest.raises(CheckpointError, match="holds preset 'optimized', not 'baseline'"):
        load_checkpoint(ship.shipped_final_path(), "baseline")
    broken = tmp_path / "optimized.safetensors"
    data = (CK / "optimized.safetensors").read_bytes()
    broken.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_checkpoint(broken, "optimized")
    shutil.copy(CK / "baseline.safetensors", tmp_path / "b.safetensors")
    with pytest.raises(CheckpointError, match="holds preset 'baseline'"):
        load_checkpoint(tmp_path / "b.safetensors", "upsample")
