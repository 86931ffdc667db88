"""evaluate(): exact helper values, real data scoring its own floor, a tiny baseline model, and the CLI."""
import argparse
import json
import math

import pytest
import torch

from course_utils.cli import evaluation as cli_eval
from course_utils import runs
from course_utils.errors import CourseError
from course_utils.evaluation.evaluate import (class_entropy, confidence, evaluate, evaluate_images, format_report,
                                   generate, real_images)

KEYS = {"fid", "fid_floor", "kid", "kid_std", "kid_floor", "checkerboard", "checkerboard_real", "confidence",
        "class_entropy", "dark_fraction", "dark_fraction_real", "n"}


pytestmark = pytest.mark.usefixtures("one_thread")


def test_class_entropy_and_confidence_exact():
    eye = torch.eye(10) * 5
    assert class_entropy(eye) == pytest.approx(math.log2(10))           # one image per class: uniform
    assert class_entropy(eye[[3, 3, 3, 3]]) == 0.0                      # all one class
    assert class_entropy(eye[[1, 2, 1, 2]]) == pytest.approx(1.0)       # two classes, half each
    assert confidence(torch.zeros(4, 10)) == pytest.approx(0.1)         # flat logits
    two = torch.tensor([[math.log(3.0), 0.0] + [-1e9] * 8])             # softmax (0.75, 0.25)
    assert confidence(two) == pytest.approx(0.75)


def test_real_images_fixed_and_bounded():
    a, b = real_images("test", 32), real_images("test", 32)
    assert torch.equal(a, b) and a.shape == (32, 1, 16, 16)
    with pytest.raises(CourseError, match="more than"):
        real_images("test", 10001)


def test_real_test_images_match_their_own_reference():
    """Feeding the reference images themselves: FID 0 and every 'real' number reproduced exactly."""
    r = evaluate_images(real_images("test", 128), kid_subsets=10)
    assert KEYS <= set(r) and r["n"] == 128
    assert r["fid"] == pytest.approx(0.0, abs=1e-6)
    assert r["fid_floor"] > 0  # two different real sets are not identical
    for k in ("checkerboard", "dark_fraction", "confidence", "class_entropy"):
        assert r[k] == pytest.approx(r[k + "_real"], abs=1e-6), k
    assert r["confidence_real"] > 0.8 and r["class_entropy_real"] > 3.0


def test_generate_is_batched_and_reproducible():
    from course_utils.model.unet import build
    torch.manual_seed(0)
    model = build("baseline")
    from course_utils.diffusion import Schedule
    sched = Schedule(T=3)  # three steps keep this test fast
    a = generate(model, 5, seed=1, batch=2, schedule=sched)
    b = generate(model, 5, seed=1, batch=2, schedule=sched)
    assert a.shape == (5, 1, 16, 16) and torch.equal(a, b)


@pytest.fixture(scope="module")
def tiny_result():
    """A ci-budget-quality (untrained) baseline, 64 samples; a 50-step sampler keeps it fast. Returns the result
    and the same 64 samples drawn again (generate is seeded), to recompute numbers independently."""
    from course_utils.diffusion import Schedule
    from course_utils.model.unet import build
    torch.manual_seed(0)
    model = build("baseline")
    r = evaluate(model, n=64, seed=0, batch=64, kid_subsets=20, schedule=Schedule(T=50))
    return r, generate(model, 64, seed=0, batch=64, schedule=Schedule(T=50))


def test_untrained_baseline_is_far_from_real(tiny_result):
    from course_utils.evaluation.classifier import predict
    from course_utils.evaluation.evaluate import default_classifier
    r, images = tiny_result
    assert KEYS <= set(r) and r["n"] == 64
    assert r["fid"] > r["fid_floor"] > 0
    assert r["kid"] > r["kid_floor"]
    # confidence and class entropy are those of these samples (clamped to [-1, 1], as evaluate feeds them),
    # recomputed here from the classifier's logits with the textbook formulas
    _, logits = predict(default_classifier(), images.clamp(-1, 1))
    assert r["confidence"] == pytest.approx(float(logits.double().softmax(1).max(1).values.mean()), abs=1e-9)
    share = [c / 64 for c in torch.bincount(logits.argmax(1), minlength=10).tolist() if c]
    assert r["class_entropy"] == pytest.approx(-sum(p * math.log2(p) for p in share), abs=1e-9)
    text = format_report(r, "baseline")
    assert "floor" in text and f"{r['fid']:.4f}" in text and f"{r['fid_floor']:.4f}" in text


@pytest.mark.parametrize("kwargs", [{"n": 1}, {"n": 10001}, {"n": 2.5}, {"n": 4, "batch": 0}])
def test_bad_arguments(kwargs):
    with pytest.raises(CourseError):
        evaluate(torch.nn.Identity(), **kwargs)


def _parser():
    p = argparse.ArgumentParser(prog="course")
    cli_eval.add_parsers(p.add_subparsers(dest="command"))
    return p


def test_cli_help_and_missing_checkpoint(tmp_path, monkeypatch, capsys):
    p = _parser()
    for cmd in ("evaluate", "train-classifier"):
        with pytest.raises(SystemExit):
            p.parse_args([cmd, "--help"])
        assert "usage" in capsys.readouterr().out
    monkeypatch.setenv("COURSE_RUNS_DIR", str(tmp_path))
    monkeypatch.setattr(runs, "checkpoint_dir", lambda: tmp_path)
    with pytest.raises(CourseError, match="python -m course_utils train baseline"):
        runs.find_checkpoint("baseline")
    with pytest.raises(CourseError, match="does not exist"):
        runs.find_checkpoint("baseline", str(tmp_path / "x.safetensors"))
    args = p.parse_args(["train-classifier", "--out", str(tmp_path / "c.pt")])
    with pytest.raises(CourseError, match=".safetensors"):
        args.func(args)


def test_cli_evaluate_json(tmp_path, capsys):
    from course_utils.checkpoints import save_checkpoint
    from course_utils.model.unet import build
    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / "m.safetensors", build("baseline"), "baseline", step=0)
    args = _parser().parse_args(["evaluate", "baseline", "--checkpoint", str(ckpt), "-n", "8", "--json"])
    assert args.func(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert KEYS <= set(out) and out["n"] == 8 and out["variant"] == "baseline"
