"""`python -m course_utils ship` end to end at a tiny size: ablation, fp16 ladder checkpoints with manifests,
the final EMA model; a second run reuses every finished run instead of training again."""
import json

import pytest
import torch

from course_utils import reports
from course_utils.checkpoints import load_checkpoint, read_checkpoint
from course_utils.errors import CheckpointError, CourseError
from course_utils.study.ship import export, ship

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]

MANIFEST_KEYS = {"preset", "command", "git_commit", "date", "config", "batch_size", "hardware", "budget", "steps",
                 "seed", "wall_seconds", "final_loss", "metrics", "file", "bytes", "dtype", "weights"}


def test_ship_tiny(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COURSE_RUNS_DIR", str(tmp_path / "runs"))
    ck, res = tmp_path / "ck", tmp_path / "res"
    out = ship(steps=2, seeds=2, n=8, final_steps=3, final_n=8, checkpoints=ck, results=res,
               presets=["baseline", "no_width"], progress=False, command="test", after_ablation=reports.write_ablation)
    # the ablation: both presets, two seeds each, every output file
    saved = json.loads((res / "results.json").read_text())
    assert {(r["preset"], r["seed"]) for r in saved["runs"]} == {(p, s) for p in ("baseline", "no_width") for s in (0, 1)}
    assert all(r["steps"] == 2 for r in saved["runs"])
    for f in ("table.md", "losses.png", "samples.png", "summary.png"):
        assert (res / f).is_file()
    # ladder checkpoint: only the ladder preset is shipped, as fp16 weights with a manifest
    assert not (ck / "no_width.safetensors").exists()
    tensors, header = read_checkpoint(ck / "baseline.safetensors")
    assert all(k.startswith("model.") for k in tensors)
    assert {v.dtype for v in tensors.values() if v.is_floating_point()} == {torch.float16}
    m = json.loads((ck / "baseline.json").read_text())
    assert MANIFEST_KEYS <= set(m) and m["steps"] == 2 and m["dtype"] == "float16" and m["command"] == "test"
    assert {"fid", "fid_floor", "kid", "checkerboard", "checkerboard_real"} <= set(m["metrics"])
    model, _ = load_checkpoint(ck / "baseline.safetensors", "baseline")
    assert next(model.parameters()).dtype == torch.float32
    with pytest.raises(CheckpointError, match="holds preset 'baseline'"):
        load_checkpoint(ck / "baseline.safetensors", "optimized")
    # the final model: EMA weights, its own manifest with the floor ratio
    fm = json.loads((ck / "optimized-final.json").read_text())
    assert fm["steps"] == 3 and fm["ema_decay"] == 0.999 and fm["weights"] == "ema"
    assert fm["fid_to_floor"] == round(fm["metrics"]["fid"] / fm["metrics"]["fid_floor"], 2)
    _, h = read_checkpoint(ck / "optimized-final.safetensors")
    assert h["preset"] == "optimized" and h["meta"]["step"] == 3
    assert out["checkpoint_bytes"] == sum(p.stat().st_size for p in ck.glob("*.safetensors"))
    # a second ship reuses every run: no checkpoint in runs/ is rewritten
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "runs").rglob("*") if p.suffix in (".safetensors", ".json")}
    evaluations = [p for p in stamps if p.name == "evaluations.json"]  # beside every run: 4 ablation runs, the final
    assert len(evaluations) == 5 and any(p.parent.name.startswith("optimized-final-") for p in evaluations)
    ship(steps=2, seeds=2, n=8, final_steps=3, final_n=8, checkpoints=ck, results=res,
         presets=["baseline", "no_width"], progress=False, command="test")
    assert stamps == {p: p.stat().st_mtime_ns for p in stamps}  # nothing retrained or re-evaluated
    assert json.loads((res / "results.json").read_text())["runs"] == saved["runs"]


def test_export_without_ema_is_refused(tmp_path, monkeypatch):
    from course_utils.checkpoints import save_checkpoint
    from course_utils.model.unet import build
    src = save_checkpoint(tmp_path / "m.safetensors", build("baseline"), "baseline", step=1)
    with pytest.raises(CourseError, match="no EMA weights"):
        export(src, tmp_path / "out.safetensors", "baseline", {}, use_ema=True)


def test_ship_cli_rejects_bad_ema(capsys):
    from course_utils.cli.main import main
    assert main(["ship", "--ema", "1.5"]) == 2
    assert "EMA decay must lie strictly between 0 and 1" in capsys.readouterr().err
