"""One test per row of docs/bad_inputs.md, the kill-and-resume test, safe loading and determinism."""
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import run_cli, write_fake_fashion

import course_utils as cu
from course_utils import data
from course_utils.checkpoints import load_checkpoint, read_checkpoint, save_checkpoint
from course_utils.diffusion import sample
from course_utils.train import train

ROOT = Path(__file__).resolve().parent.parent


def cli(*args, env=None, timeout=300):
    """The command line in this process (see conftest.run_cli); test_kill_and_resume uses a real process."""
    return run_cli(*args, env=env)


def cli_process(*args, env=None, timeout=300):
    e = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, "-m", "course_utils", *args], capture_output=True, text=True,
                          env=e, cwd=ROOT, timeout=timeout)


def assert_clean_error(r, match):
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert re.search(match, r.stderr), r.stderr
    assert "Traceback" not in r.stderr and r.stderr.startswith("error: ")


@pytest.fixture(scope="module")
def baseline():
    return cu.build("baseline").eval()


def test_bad_image_size(baseline):
    with pytest.raises(cu.CourseError, match=r"expects images of shape \(batch, 1, 16, 16\), got \(2, 1, 28, 28\).*Fix"):
        baseline(torch.randn(2, 1, 28, 28), torch.tensor([1, 2]))


def test_bad_channel_count(baseline):
    with pytest.raises(cu.CourseError, match=r"got \(2, 3, 16, 16\).*1 channel"):
        baseline(torch.randn(2, 3, 16, 16), torch.tensor([1, 2]))


def test_bad_dtype(baseline):
    with pytest.raises(cu.CourseError, match="floating-point.*x.float"):
        baseline(torch.zeros(2, 1, 16, 16, dtype=torch.uint8), torch.tensor([1, 2]))


def test_timestep_out_of_range(baseline):
    with pytest.raises(cu.CourseError, match=r"\[0, 149\].*not t/T"):
        baseline(torch.randn(2, 1, 16, 16), torch.tensor([0, 150]))
    with pytest.raises(cu.CourseError, match=r"\[0, 149\]"):
        baseline(torch.randn(2, 1, 16, 16), torch.tensor([-1, 3]))


def test_timestep_wrong_shape(baseline):
    with pytest.raises(cu.CourseError, match=r"shape \(2,\), one per image.*torch.full"):
        baseline(torch.randn(2, 1, 16, 16), torch.tensor([[1], [2]]))
    with pytest.raises(cu.CourseError, match="one per image"):
        baseline(torch.randn(2, 1, 16, 16), 5)


def test_group_count_not_dividing():
    with pytest.raises(cu.CourseError, match=r"down1\.conv1: GroupNorm\(num_groups=48, num_channels=64\).*divisors of 64"):
        cu.build("groupnorm", groups=48)


def test_unknown_preset_cli():
    assert_clean_error(cli("train", "baselin"), "unknown preset 'baselin'. Did you mean 'baseline'")


def test_unknown_budget_cli():
    assert_clean_error(cli("train", "baseline", "--budget", "huge"), "unknown budget 'huge'.*ci.*quick.*full")


def test_unknown_sampler(baseline, tmp_path):
    with pytest.raises(cu.CourseError, match="unknown sampler variance 'gamma'"):
        sample(baseline, 2, sigma="gamma")
    r = cli("sample", "baseline", "--sigma", "gamma", "--out", str(tmp_path / "x.png"))
    assert r.returncode == 2 and "invalid choice: 'gamma'" in r.stderr and "Traceback" not in r.stderr


def test_mistyped_course_budget():
    assert_clean_error(cli("train", "baseline", env={"COURSE_BUDGET": "quik"}),
                       "COURSE_BUDGET='quik'. Did you mean 'quick'")


def test_no_dataset_anywhere(no_fashion_data):
    # no_fashion_data: $FASHION_MNIST_DIR unset, empty temporary cache and system folders, COURSE_OFFLINE=1
    r = cli("data")
    assert_clean_error(r, "Fashion-MNIST was not found")
    for way in ("apt-get install -y dataset-fashion-mnist", "FASHION_MNIST_DIR", "FashionMNIST/raw"):
        assert way in r.stderr
    # it looked where this test pointed it, not at whatever copy the machine has, and not online
    assert f"{no_fashion_data.system} (the Debian package" in r.stderr
    assert f"{no_fashion_data.cache} (the course's cache)" in r.stderr
    assert "torchvision download" not in r.stderr


def test_partial_dataset(no_fashion_data, monkeypatch):
    write_fake_fashion(no_fashion_data.system)  # a complete copy elsewhere must not hide the broken folder
    d = no_fashion_data.env_dir
    d.mkdir()
    (d / "train-images-idx3-ubyte.gz").write_bytes(b"")
    monkeypatch.setenv("FASHION_MNIST_DIR", str(d))
    r = cli("data")
    assert_clean_error(r, "is missing train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte")


def test_corrupt_dataset(fake_fashion):
    # a complete synthetic set in $FASHION_MNIST_DIR, then its train images cut short like an interrupted download
    f = fake_fashion.env_dir / "train-images-idx3-ubyte.gz"
    good = f.read_bytes()
    f.write_bytes(good[: len(good) // 3])
    r = cli("data")
    assert_clean_error(r, f"{re.escape(str(f))} is corrupt or truncated.*get the file again")


@pytest.fixture
def saved(tmp_path):
    return save_checkpoint(tmp_path / "baseline.safetensors", cu.build("baseline"), "baseline")


def test_corrupt_checkpoint(saved, tmp_path):
    raw = bytearray(saved.read_bytes())
    raw[0:8] = b"\xff" * 8  # header length garbage
    bad = tmp_path / "corrupt.safetensors"
    bad.write_bytes(bytes(raw))
    with pytest.raises(cu.CheckpointError, match="corrupt or truncated"):
        load_checkpoint(bad)
    assert_clean_error(cli("sample", "baseline", "--checkpoint", str(bad), "--out", str(tmp_path / "x.png")),
                       "corrupt or truncated")


def test_truncated_checkpoint(saved, tmp_path):
    bad = tmp_path / "trunc.safetensors"
    bad.write_bytes(saved.read_bytes()[:-1000])
    with pytest.raises(cu.CheckpointError, match="corrupt or truncated"):
        load_checkpoint(bad)


def test_checkpoint_of_another_preset(saved, tmp_path):
    with pytest.raises(cu.CheckpointError, match="holds preset 'baseline', not 'optimized'"):
        load_checkpoint(saved, "optimized")
    assert_clean_error(cli("sample", "optimized", "--checkpoint", str(saved), "--out", str(tmp_path / "x.png")),
                       "holds preset 'baseline', not 'optimized'")


def test_unwritable_output_folder(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert_clean_error(cli("train", "baseline", "--budget", "ci", "--out", str(blocker / "run")),
                       "cannot create the output folder.*Fix")


def test_nan_loss_keeps_last_good_checkpoint(tmp_path):
    ds = data.load("train")
    model = cu.build("baseline")
    ck = tmp_path / "model.safetensors"
    train(model, ds, 4, checkpoint=ck, save_every=2, progress=False, preset="baseline")
    good = ck.read_bytes()
    with torch.no_grad():
        model.out[-1].bias.fill_(float("nan"))
    with pytest.raises(cu.TrainingDiverged, match=r"loss became nan at step 1.*last good checkpoint.*kept.*lower the learning rate"):
        train(model, ds, 8, checkpoint=ck, save_every=2, progress=False, preset="baseline")
    assert ck.read_bytes() == good
    _, header = read_checkpoint(ck)
    assert header["meta"]["step"] == 4


def test_resume_without_checkpoint(tmp_path):
    assert_clean_error(cli("train", "baseline", "--budget", "ci", "--out", str(tmp_path / "new"), "--resume"),
                       "no checkpoint .* to continue from")


def test_bad_config_image_size():
    with pytest.raises(cu.CourseError, match="img_size=18 must be a multiple of 4.*16 or 20"):
        cu.build("baseline", img_size=18)


def test_bad_ema_decay(tmp_path):
    assert_clean_error(cli("train", "baseline", "--steps", "1", "--ema", "1.5", "--out", str(tmp_path / "r")),
                       r"EMA decay must lie strictly between 0 and 1 \(e.g. 0.999\), got 1.5.*Fix")
    assert_clean_error(cli("ship", "--ema", "0"), "EMA decay must lie strictly between 0 and 1")
    assert not (tmp_path / "r" / "model.safetensors").exists()


def test_bad_sampler_settings_cli(tmp_path):
    out = str(tmp_path / "x.png")
    assert_clean_error(cli("sample", "baseline", "--sampler", "ddim", "--steps", "500", "--out", out),
                       r"DDIM needs between 1 and T=150 steps, got 500\. Fix")
    assert_clean_error(cli("sample", "baseline", "--steps", "25", "--out", out),
                       r"--steps and --eta belong to the DDIM sampler\. Fix: add --sampler ddim")
    r = cli("evaluate", "baseline", "--sampler", "ddim", "--eta", "2")
    assert r.returncode == 2 and "expected a number between 0 and 1" in r.stderr
    assert not (tmp_path / "x.png").exists()


def test_unknown_shipped_name_cli(tmp_path):
    assert_clean_error(cli("sample", "optimized-finale", "--out", str(tmp_path / "x.png")),
                       r"unknown preset 'optimized-finale'\. Did you mean 'optimized'\?.*Shipped checkpoints:.*optimized-final")


def test_no_course_folder(tmp_path, monkeypatch):
    from course_utils import paths
    monkeypatch.delenv("COURSE_HOME", raising=False)
    monkeypatch.setattr(paths, "PACKAGE_DIR", tmp_path / "site" / "course_utils")  # installed outside a checkout
    monkeypatch.chdir(tmp_path)
    assert paths.find_home() is None
    assert_clean_error(cli("evaluate", "baseline", "-n", "16"),
                       r"course folder .* was not found.*Fix: run the command from the repository's root, or set "
                       r"COURSE_HOME=")


def test_not_a_course_unet():
    from course_utils import notebook as nb
    with pytest.raises(cu.CourseError, match=r"a Linear is not a course U-Net.*Fix: swap your module into a U-Net"):
        nb.compare(["wide", torch.nn.Linear(2, 2)], "ci", show=False)


def test_same_network_twice():
    from course_utils import notebook as nb
    with pytest.raises(cu.CourseError, match=r"the same network twice: \['baseline', 'baseline'\]\. Fix"):
        nb.compare(["baseline", cu.build("baseline")], "ci", show=False)


def test_block_neither_name_nor_factory():
    with pytest.raises(cu.CourseError, match=r"act=3: give a name .*'silu'.* or a factory"):
        cu.build("wide", act=3)


def test_every_documented_row_has_a_test():
    doc = (ROOT / "docs" / "bad_inputs.md").read_text()
    rows = re.findall(r"^\| (\d+) \|.*\| `(test_\w+)` \|$", doc, flags=re.M)
    assert len(rows) >= 12
    here = globals()
    for num, name in rows:
        assert name in here and callable(here[name]), f"row {num}: {name} is not a test in this file"


@pytest.mark.slow
def test_kill_and_resume(tmp_path):
    """Kill a real training process with SIGKILL mid-run, then continue it with --resume."""
    out = tmp_path / "run"
    args = ["train", "baseline", "--steps", "60", "--save-every", "10", "--out", str(out), "-n", "4",
            "--budget", "quick"]
    proc = subprocess.Popen([sys.executable, "-m", "course_utils", *args], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=dict(os.environ))
    ck = out / "model.safetensors"
    deadline = time.time() + 240
    step = 0
    try:
        while time.time() < deadline:
            if ck.is_file():
                step = read_checkpoint(ck)[1]["meta"]["step"]
                if step >= 20:
                    break
            if proc.poll() is not None:
                pytest.fail("training finished before it could be killed; make it longer")
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert 20 <= step < 60, step
    saved_step = read_checkpoint(ck)[1]["meta"]["step"]  # the file is whole: it reads
    assert saved_step % 10 == 0 and saved_step >= step
    assert not list(out.glob("*.tmp"))  # no half-written files left behind (mkstemp names end in .tmp)
    r = cli_process(*args, "--resume")
    assert r.returncode == 0, r.stderr
    _, header = read_checkpoint(ck)
    assert header["meta"]["step"] == 60 and len(header["meta"]["losses"]) == 60
    assert (out / "samples.png").is_file()


def test_no_pickle_loading():
    offenders = []
    for path in list(ROOT.glob("course_utils/**/*.py")) + list(ROOT.glob("tests/*.py")) + list(ROOT.glob("notebooks/*.ipynb")):
        text = path.read_text()
        for m in re.finditer(r"torch\.load\(([^)]*)\)", text):
            if "weights_only=True" not in m.group(1):
                offenders.append(f"{path}: {m.group(0)}")
        for m in re.finditer(r"pickle\.loads?\(|import pickle|cPickle", text):
            offenders.append(f"{path}: {m.group(0)}")
    offenders = [o for o in offenders if "test_reliability.py" not in o]
    assert not offenders, offenders


def test_same_seed_bitwise_identical_samples(one_thread):
    torch.manual_seed(3)
    m = cu.build("optimized")
    a = sample(m, 4, seed=11)
    b = sample(m, 4, seed=11)
    assert torch.equal(a, b)


def test_same_seed_bitwise_identical_training():
    ds = data.load("train")
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        m = cu.build("baseline")
        h = train(m, ds, 3, seed=4, progress=False)
        runs.append((h.losses, [p.detach().clone() for p in m.parameters()]))
    assert runs[0][0] == runs[1][0]
    assert all(torch.equal(a, b) for a, b in zip(runs[0][1], runs[1][1]))


def test_register_block_that_does_not_fit():
    from course_utils.model.blocks import known, register_block
    with pytest.raises(cu.CourseError, match=r"must return an nn.Module whose output has shape \(2, 3, 8, 8\)"):
        register_block("up", "mine", lambda i, o: torch.nn.Conv2d(i, o, 3, padding=1))
    assert "mine" not in known("up")


def test_unknown_config_field():
    with pytest.raises(cu.CourseError, match=r"unknown U-Net config fields \['colour'\]; known fields"):
        cu.build("wide", colour="red")


def test_batch_not_divisible_by_processes():
    d = data.FashionData(torch.zeros(8, 1, 16, 16), torch.zeros(8, dtype=torch.long), "train", "synthetic")
    with pytest.raises(cu.CourseError, match="batch_size 128 must split evenly over 3 processes.*divisible by 3"):
        data.Batches(d, 128, rank=0, world=3)


def test_guidance_without_labels_cli():
    assert_clean_error(cli("evaluate", "baseline", "-n", "16", "--guidance", "2"),
                       r"--guidance needs a class-conditional model; baseline has no class labels")


def test_start_of_the_wrong_shape():
    with pytest.raises(cu.CourseError, match=r"start must have the shape of the samples, \(3, 1, 16, 16\)"):
        sample(cu.build("baseline"), 3, start=torch.zeros(4, 1, 16, 16))

