"""Unit tests of the foundation: data, schedule, forward noising, the baseline U-Net, training, checkpoints."""
import gzip
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import FAKE_N, STEMS, idx_bytes, write_fake_fashion

import course_utils as cu
from course_utils import data
from course_utils.checkpoints import load_checkpoint, save_checkpoint
from course_utils.diffusion import Schedule, sample
from course_utils.train import BUDGETS, diffusion_loss, get_budget, train

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def train_set():
    return data.load("train")


def test_data_shapes_and_range(train_set):
    test_set = data.load("test")
    assert train_set.images.shape == (60000, 1, 16, 16) and test_set.images.shape == (10000, 1, 16, 16)
    assert train_set.images.dtype == torch.float32 and train_set.labels.dtype == torch.int64
    assert train_set.images.min() >= -1 and train_set.images.max() <= 1
    assert train_set.images.min() == -1  # backgrounds reach the darkest value
    assert sorted(train_set.labels.unique().tolist()) == list(range(10))
    assert torch.bincount(test_set.labels).tolist() == [1000] * 10  # the real test split is balanced
    assert not torch.equal(train_set.images[:100], test_set.images[:100])


def test_batches_flip_and_shuffle(train_set):
    b = data.Batches(train_set, 128, seed=0)
    x, y = next(b)
    assert x.shape == (128, 1, 16, 16) and y.shape == (128,)
    # every image of the batch is either the original or its mirror image
    perm_idx = b._perm[:128]
    orig = train_set.images[perm_idx]
    same = (x == orig).flatten(1).all(1)
    mirrored = (x == orig.flip(-1)).flatten(1).all(1)
    assert bool((same | mirrored).all()) and 20 < int((mirrored & ~same).sum()) < 108
    x2, _ = next(data.Batches(train_set, 128, seed=0))
    assert torch.equal(x, x2)  # seeded


def test_preprocess_is_antialiased_resize():
    img = torch.zeros(1, 28, 28, dtype=torch.uint8)
    img[0, :, ::2] = 255  # stripes one pixel wide alias badly without antialiasing
    out = data.preprocess(img.numpy())
    assert out.shape == (1, 1, 16, 16)
    assert float(out.std()) < 0.2  # antialiasing averages the stripes to a nearly flat gray


def test_no_dataset_anywhere_names_every_way(no_fashion_data, monkeypatch):
    import torchvision.datasets

    tried = []
    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", lambda *a, **k: tried.append(a) or 1 / 0)
    for download in (False, True):  # COURSE_OFFLINE=1: even download=True must not go to the network
        with pytest.raises(cu.DatasetNotFound) as e:
            data.load("train", download=download)
    assert tried == []
    msg = str(e.value)
    for way in ("apt-get install -y dataset-fashion-mnist", "FASHION_MNIST_DIR", "FashionMNIST/raw", "python -m course_utils data"):
        assert way in msg
    # the places searched are this test's empty folders, whatever real copy the machine has
    assert "$FASHION_MNIST_DIR (not set)" in msg
    assert f"{no_fashion_data.cache} (the course's cache)" in msg
    assert f"{no_fashion_data.system} (the Debian package" in msg


def test_fake_dataset_is_read_byte_for_byte(fake_fashion):
    """The synthetic IDX files come back exactly: header skipped, row-major pixels, labels in order."""
    small = {}
    for split in ("train", "test"):
        images, labels = fake_fashion.arrays[split]
        full = data.load(split, size=28, download=False)  # 28x28: no resize, only the scaling to [-1, 1]
        assert full.source == f"$FASHION_MNIST_DIR: {fake_fashion.env_dir}"
        assert torch.equal(full.labels, torch.from_numpy(labels.astype(np.int64)))
        assert torch.allclose(full.images[:, 0], torch.from_numpy(images).float() / 127.5 - 1, atol=1e-6)
        small[split] = data.load(split, download=False)
        assert small[split].images.shape == (len(labels), 1, 16, 16) and torch.equal(small[split].labels, full.labels)
    # the second load comes from the preprocessed cache, in the temporary cache folder
    assert (fake_fashion.cache / "fashion_train_16.safetensors").is_file()
    again = data.load("train", download=False)
    assert again.source.startswith("cache ") and torch.equal(again.images, small["train"].images)


def test_search_order(no_fashion_data, monkeypatch):
    """$FASHION_MNIST_DIR, then the cache (also its FashionMNIST/raw), then the system folder; gzipped or plain."""
    ns = no_fashion_data
    arrays = write_fake_fashion(ns.system, seed=1, gz=False)
    write_fake_fashion(ns.cache / "FashionMNIST" / "raw", seed=2)
    write_fake_fashion(ns.env_dir, seed=3)
    monkeypatch.setenv("FASHION_MNIST_DIR", str(ns.env_dir))
    assert data.locate_raw(download=False) == (ns.env_dir, f"$FASHION_MNIST_DIR: {ns.env_dir}")
    monkeypatch.delenv("FASHION_MNIST_DIR")
    assert data.locate_raw(download=False) == (ns.cache, f"the course's cache: {ns.cache}")
    shutil.rmtree(ns.cache / "FashionMNIST")
    folder, where = data.locate_raw(download=False)
    assert folder == ns.system and "dataset-fashion-mnist" in where
    images, labels = arrays["train"]
    stem_img, stem_lab = data.FILES["train"][:2]
    assert np.array_equal(data._read_idx(data._find_file(folder, stem_img), 3, len(images)), images)  # plain file
    assert np.array_equal(data._read_idx(data._find_file(folder, stem_lab), 1, len(labels)), labels)
    shutil.rmtree(ns.system)
    with pytest.raises(cu.DatasetNotFound, match="was not found"):
        data.locate_raw(download=False)


def test_partial_and_corrupt_dataset(no_fashion_data, monkeypatch):
    write_fake_fashion(no_fashion_data.system)  # a complete copy elsewhere must not hide a broken $FASHION_MNIST_DIR
    d = no_fashion_data.env_dir
    d.mkdir()
    monkeypatch.setenv("FASHION_MNIST_DIR", str(d))
    monkeypatch.setattr(data, "FILES", {s: (*STEMS[s], FAKE_N[s]) for s in FAKE_N})
    (d / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x03" + b"\x00" * 20))
    with pytest.raises(cu.DatasetNotFound, match="is missing train-labels-idx1-ubyte, t10k-images-idx3-ubyte, "
                                                 "t10k-labels-idx1-ubyte"):
        data.load("train", download=False)
    for name in ("train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (d / (name + ".gz")).write_bytes(gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x01\x07"))
    with pytest.raises(cu.DatasetNotFound, match="train-images-idx3-ubyte.gz is incomplete or truncated"):
        data.load("train", download=False)
    # a whole gzip stream whose IDX data stop early: the header promises more images than there are
    pixels = np.random.default_rng(0).integers(0, 256, (FAKE_N["train"], 28, 28), dtype=np.uint8)
    whole = idx_bytes(pixels)
    (d / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(whole[:-100]))
    with pytest.raises(cu.DatasetNotFound, match="train-images-idx3-ubyte.gz is incomplete or truncated"):
        data.load("train", download=False)
    # a gzip stream cut short (an interrupted download)
    (d / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(whole)[: len(whole) // 3])
    with pytest.raises(cu.DatasetNotFound, match="train-images-idx3-ubyte.gz is corrupt or truncated"):
        data.load("train", download=False)
    (d / "train-images-idx3-ubyte.gz").write_bytes(b"not gzip at all")
    with pytest.raises(cu.DatasetNotFound, match="train-images-idx3-ubyte.gz is corrupt or truncated"):
        data.load("train", download=False)


def test_wrong_item_count_or_shape(fake_fashion):
    d = fake_fashion.env_dir
    (d / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.zeros(5, np.uint8))))
    with pytest.raises(cu.DatasetNotFound, match=r"train-labels-idx1-ubyte.gz holds a torch.uint8 array of shape "
                                                 r"\(5,\), expected 24 uint8 items with 1 dimension"):
        data.load("train", download=False)
    (d / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.zeros((12, 784), np.uint8))))
    with pytest.raises(cu.DatasetNotFound, match=r"shape \(12, 784\), expected 12 uint8 items with 3 dimension"):
        data.load("test", download=False)


def test_schedule_properties():
    s = Schedule()
    assert s.T == 150 and len(s.betas) == 150
    assert torch.isclose(s.betas[0], torch.tensor(1e-4)) and torch.isclose(s.betas[-1], torch.tensor(0.02))
    assert bool((s.betas[1:] > s.betas[:-1]).all())          # increasing
    assert bool((s.alpha_bar[1:] < s.alpha_bar[:-1]).all())  # signal decreases
    assert bool((s.beta_tilde <= s.betas + 1e-12).all()) and float(s.beta_tilde[0]) == 0.0
    assert abs(float(s.alpha_bar[-1].sqrt()) - 0.4682) < 1e-3  # T=150 never reaches pure noise


def test_forward_noising_statistics():
    s = Schedule()
    g = torch.Generator().manual_seed(0)
    x0 = torch.full((50000, 1, 2, 2), 0.5)
    t = torch.full((50000,), 100)
    xt = s.q_sample(x0, t, torch.randn(x0.shape, generator=g))
    ab = s.alpha_bar[100]
    assert abs(float(xt.mean()) - float(ab.sqrt() * 0.5)) < 0.01
    assert abs(float(xt.std()) - float((1 - ab).sqrt())) < 0.01
    assert torch.equal(s.q_sample(x0[:4], torch.zeros(4, dtype=torch.long), torch.zeros(4, 1, 2, 2)),
                       x0[:4] * s.alpha_bar[0].sqrt())


def test_reverse_step_inverts_the_mean_with_true_noise():
    s = Schedule()
    x0 = torch.rand(3, 1, 4, 4)
    eps = torch.randn_like(x0)
    t = torch.tensor([0, 0, 0])
    xt = s.q_sample(x0, t, eps)
    assert torch.allclose(s.p_step(xt, t, eps, None), x0, atol=1e-5)  # at t=0 the mean is x0 exactly


def test_param_counts_and_shapes():
    assert cu.count_params(cu.build("baseline")) == 240385
    assert cu.count_params(cu.build("optimized")) == 1979777
    for name in cu.PRESETS:
        m = cu.build(name)
        assert m(torch.randn(3, 1, 16, 16), torch.tensor([0, 75, 149])).shape == (3, 1, 16, 16)


@pytest.mark.parametrize("bad, match", [
    (torch.randn(2, 1, 28, 28), r"shape \(batch, 1, 16, 16\)"),
    (torch.randn(2, 3, 16, 16), r"1 channel"),
    (torch.zeros(2, 1, 16, 16, dtype=torch.uint8), "floating-point"),
])
def test_model_rejects_bad_images(bad, match):
    with pytest.raises(cu.CourseError, match=match):
        cu.build("baseline")(bad, torch.tensor([1, 2]))


def test_model_rejects_bad_timesteps():
    m = cu.build("baseline")
    x = torch.randn(2, 1, 16, 16)
    with pytest.raises(cu.CourseError, match=r"\[0, 149\]"):
        m(x, torch.tensor([0, 150]))
    with pytest.raises(cu.CourseError, match="one per image"):
        m(x, torch.tensor([1, 2, 3]))


def test_unknown_preset_and_budget(monkeypatch):
    with pytest.raises(cu.CourseError, match="Did you mean 'baseline'"):
        cu.build("baselin")
    with pytest.raises(cu.CourseError, match="unknown budget"):
        get_budget("medium")
    monkeypatch.setenv("COURSE_BUDGET", "quik")
    with pytest.raises(cu.CourseError, match="COURSE_BUDGET='quik'.*Did you mean 'quick'"):
        get_budget()
    monkeypatch.setenv("COURSE_BUDGET", " Quick ")
    assert get_budget().name == "quick"


def test_invalid_configs_name_the_layer():
    with pytest.raises(cu.CourseError, match=r"down0.*num_groups=5.*divisors of 64"):
        cu.build("groupnorm", groups_first=5)
    with pytest.raises(cu.CourseError, match="multiple of 4"):
        cu.build("baseline", img_size=18)


def test_training_lowers_the_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    model = cu.build("baseline")
    x0 = data.load("train").images[:64]
    s = Schedule()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def loss_at(seed):
        return diffusion_loss(model, x0, s, torch.Generator().manual_seed(seed))

    with torch.no_grad():
        before = float(sum(loss_at(k) for k in range(3)) / 3)
    for step in range(40):
        loss = loss_at(100 + step)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        after = float(sum(loss_at(k) for k in range(3)) / 3)
    assert after < 0.6 * before, (before, after)


def test_train_loop_and_checkpoint_round_trip(tmp_path, train_set):
    model = cu.build("baseline")
    ck = tmp_path / "run" / "model.safetensors"
    h = train(model, train_set, 5, checkpoint=ck, progress=False, preset="baseline", ema_decay=0.9)
    assert len(h.losses) == 5 and ck.is_file() and h.ema is not None
    loaded, header = load_checkpoint(ck, "baseline", use_ema=False)
    assert header["preset"] == "baseline" and header["meta"]["step"] == 5
    for (k, a), b in zip(model.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), k
    x = torch.randn(2, 1, 16, 16)
    t = torch.tensor([3, 140])
    assert torch.equal(model(x, t), loaded.eval()(x, t))
    assert not list(ck.parent.glob("*.tmp"))  # nothing half-written left behind


def test_checkpoint_errors(tmp_path):
    m = cu.build("baseline")
    p = save_checkpoint(tmp_path / "b.safetensors", m, "baseline")
    with pytest.raises(cu.CheckpointError, match="holds preset 'baseline', not 'optimized'"):
        load_checkpoint(p, "optimized")
    with pytest.raises(cu.CheckpointError, match="does not fit"):
        load_checkpoint(p, model=cu.build("optimized"))
    raw = p.read_bytes()
    (tmp_path / "trunc.safetensors").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(cu.CheckpointError, match="corrupt or truncated"):
        load_checkpoint(tmp_path / "trunc.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 100)
    with pytest.raises(cu.CheckpointError, match="corrupt or truncated"):
        load_checkpoint(tmp_path / "junk.safetensors")
    with pytest.raises(cu.CheckpointError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "missing.safetensors")


def test_sampling_is_seeded_and_returns_frames():
    m = cu.build("baseline")
    a = sample(m, 3, seed=5)
    b = sample(m, 3, seed=5)
    assert torch.equal(a, b) and not torch.equal(a, sample(m, 3, seed=6))
    x, frames, steps = sample(m, 2, seed=0, frames=5)
    assert frames.shape == (5, 2, 1, 16, 16) and steps[0] == 149 and steps[-1] == 0
    assert torch.equal(frames[-1].clamp(-1, 1), x)
    assert x.min() >= -1 and x.max() <= 1
    with pytest.raises(cu.CourseError, match="sampler variance"):
        sample(m, 2, sigma="gamma")


def test_budgets():
    assert BUDGETS["full"].steps_for("baseline") == 3 * 468 and BUDGETS["full"].steps_for("optimized") == 5 * 468
    assert BUDGETS["ci"].steps_for("optimized") < 10


def _cli(*args, env=None):
    e = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, "-m", "course_utils", *args], capture_output=True, text=True, env=e,
                          cwd=ROOT, timeout=300)


def test_cli_variants_json():
    import json
    r = _cli("variants", "--json")
    assert r.returncode == 0
    rows = {row["name"]: row for row in json.loads(r.stdout)}
    assert rows["baseline"]["params"] == 240385 and rows["optimized"]["params"] == 1979777
    assert all({"name", "params", "description"} <= set(row) for row in rows.values())


@pytest.mark.parametrize("args, env, match", [
    (["train", "nope"], None, "unknown preset 'nope'"),
    (["train", "baseline", "--budget", "huge"], None, "unknown budget"),
    (["train", "baseline"], {"COURSE_BUDGET": "fast"}, "COURSE_BUDGET='fast'"),
    (["sample", "baseline", "--checkpoint", "/nonexistent.safetensors", "--out", "x.png"], None, "/nonexistent.safetensors does not exist"),
])
def test_cli_errors_are_messages_not_tracebacks(args, env, match):
    r = _cli(*args, env=env)
    assert r.returncode != 0
    assert match in r.stderr and "Traceback" not in r.stderr


def test_cli_help_everywhere():
    from conftest import run_cli

    from course_utils.cli.main import build_parser
    commands = build_parser()._subparsers._group_actions[0].choices
    assert {"variants", "data", "train", "sample", "evaluate", "bench", "study", "compare-samplers"} <= set(commands)
    for cmd in commands:  # in this process: one torch import for all of them
        r = run_cli(cmd, "--help")
        assert r.returncode == 0 and r.stdout.startswith(f"usage: python -m course_utils {cmd}"), cmd
    r = _cli("--help")  # and once as a real process
    assert r.returncode == 0 and "COMMAND" in r.stdout


@pytest.mark.slow
def test_cli_train_then_sample(tmp_path):
    r = _cli("train", "baseline", "--budget", "ci", "--out", str(tmp_path), "-n", "4")
    assert r.returncode == 0, r.stderr
    for f in ("model.safetensors", "samples.png", "loss.png", "history.json"):
        assert (tmp_path / f).is_file()
    r = _cli("sample", "baseline", "--checkpoint", str(tmp_path / "model.safetensors"), "-n", "4",
             "--out", str(tmp_path / "s.png"))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "s.png").is_file()
