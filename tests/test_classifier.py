"""The metric classifier: shapes, save/load round trip, clear errors, a tiny training run, the shipped weights."""
import json

import pytest
import torch

from course_utils.evaluation.classifier import (FEATURE_DIM, classifier_path, FashionClassifier, accuracy, load_classifier,
                                     manifest_path, predict, save_classifier, train_classifier)
from course_utils.data import FashionData, load
from course_utils.errors import CheckpointError, CourseError


pytestmark = pytest.mark.usefixtures("one_thread")


def test_shapes_and_features_feed_the_head():
    torch.manual_seed(0)
    m = FashionClassifier().eval()
    x = torch.rand(5, 1, 16, 16) * 2 - 1
    f = m.features(x)
    assert f.shape == (5, FEATURE_DIM) == (5, 256) and (f >= 0).all()  # after a ReLU
    assert m(x).shape == (5, 10)
    assert torch.allclose(m.head(f), m(x))  # in eval mode dropout is off: logits = head(features)
    feats, logits = predict(m, x, batch=2)
    assert torch.allclose(feats, f, atol=1e-5) and torch.allclose(logits, m(x), atol=1e-5)


def test_bad_input_shape():
    with pytest.raises(CourseError, match=r"\(N, 1, H, W\)"):
        FashionClassifier().features(torch.zeros(2, 16, 16))


def test_save_load_round_trip(tmp_path):
    torch.manual_seed(1)
    m = FashionClassifier().eval()
    p = save_classifier(m, tmp_path / "c.safetensors", {"test_accuracy": 0.5})
    assert json.loads(manifest_path(p).read_text()) == {"test_accuracy": 0.5}
    m2 = load_classifier(p)
    assert not m2.training
    x = torch.rand(3, 1, 16, 16)
    assert torch.equal(m.features(x), m2.features(x))
    with pytest.raises(CourseError, match="safetensors"):
        save_classifier(m, tmp_path / "c.pt")


def test_missing_corrupt_and_foreign_files(tmp_path):
    with pytest.raises(CheckpointError, match="train-classifier"):
        load_classifier(tmp_path / "nope.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file at all")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_classifier(bad)
    from safetensors.torch import save_file
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    with pytest.raises(CheckpointError, match="not a classifier checkpoint"):
        load_classifier(foreign)


def test_tiny_training_run_writes_weights_and_manifest(tmp_path):
    train, test = load("train"), load("test")
    small = FashionData(train.images[:256], train.labels[:256], "train", "subset")
    small_test = FashionData(test.images[:200], test.labels[:200], "test", "subset")
    out = tmp_path / "clf.safetensors"
    model, man = train_classifier(steps=3, seed=0, batch_size=64, progress=False, train_data=small,
                                  test_data=small_test, out=out, threads=1)
    assert out.is_file() and manifest_path(out).is_file()
    saved = json.loads(manifest_path(out).read_text())
    assert saved == man
    for key in ("command", "git_commit", "epochs", "steps", "wall_seconds", "hardware", "test_accuracy", "date"):
        assert key in man
    assert man["steps"] == 3 and man["test_images"] == 200 and man["hardware"]["threads"] == 1
    assert man["test_accuracy"] == round(accuracy(model, small_test.images, small_test.labels), 4)
    again, _ = train_classifier(steps=3, seed=0, batch_size=64, progress=False, train_data=small,
                                test_data=small_test, threads=1)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))


@pytest.mark.parametrize("kwargs", [{"epochs": 0}, {"steps": 0}, {"steps": 1, "threads": 0}])
def test_bad_training_arguments(kwargs):
    with pytest.raises(CourseError):
        train_classifier(progress=False, **kwargs)


@pytest.mark.skipif(not classifier_path().is_file(), reason="the shipped classifier is not there yet")
def test_shipped_classifier_reaches_its_manifest_accuracy():
    man = json.loads(manifest_path(classifier_path()).read_text())
    assert man["test_accuracy"] >= 0.90
    assert man["steps"] > 0 and man["hardware"]["torch"]
    model = load_classifier()
    test = load("test")
    acc = accuracy(model, test.images, test.labels)
    assert acc == pytest.approx(man["test_accuracy"], abs=5e-4)
