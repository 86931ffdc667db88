"""Multi-process training with torchrun: 2 CPU processes (gloo) train a few steps of the baseline with
DistributedDataParallel. Rank 0 alone writes the checkpoint; its loss curve matches one process training with the
same global batch, up to the noise of different random draws; the batches are split without overlap."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from course_utils.checkpoints import read_checkpoint
from course_utils.data import Batches, FashionData

ROOT = Path(__file__).resolve().parents[1]
STEPS = 30


def test_the_shards_of_a_batch_cover_it_exactly_once():
    data = FashionData(torch.arange(64, dtype=torch.float32).view(64, 1, 1, 1).expand(64, 1, 2, 2).clone(),
                       torch.arange(64), "train", "synthetic")
    one = Batches(data, 16, flip=False, seed=5)
    shards = [Batches(data, 16, flip=False, seed=5, rank=r, world=2) for r in range(2)]
    for _ in range(6):  # more than one epoch
        whole = next(one)[1]
        parts = [next(s)[1] for s in shards]
        assert all(len(p) == 8 for p in parts) and torch.equal(torch.cat(parts), whole)
    with pytest.raises(Exception, match="split evenly over 3 processes"):
        Batches(data, 16, rank=0, world=3)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("torchrun") is None and not (Path(sys.executable).parent / "torchrun").is_file(),
                    reason="torchrun is not installed")
def test_torchrun_two_cpu_processes(tmp_path):
    torchrun = Path(sys.executable).parent / "torchrun"
    env = dict(os.environ, OMP_NUM_THREADS="1", COURSE_DEVICE="cpu")
    common = ["-m", "course_utils", "train", "baseline", "--steps", str(STEPS), "--budget", "ci", "-n", "4",
              "--save-every", "10"]
    r = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node=2", *common, "--out", str(tmp_path / "ddp")],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert r.stdout.count("training baseline for") == 1  # rank 0 alone prints
    assert "2 processes, 64 images each per step" in r.stdout
    _, header = read_checkpoint(tmp_path / "ddp" / "model.safetensors")
    assert header["meta"]["step"] == STEPS and (tmp_path / "ddp" / "samples.png").is_file()
    ddp = header["meta"]["losses"]
    single = subprocess.run([sys.executable, *common, "--out", str(tmp_path / "one")], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=600)
    assert single.returncode == 0, single.stderr[-3000:]
    one = read_checkpoint(tmp_path / "one" / "model.safetensors")[1]["meta"]["losses"]
    assert len(ddp) == len(one) == STEPS and all(torch.isfinite(torch.tensor(ddp)))
    # the same global batches and the same initial weights: the curves agree up to the noise of the draws of t
    assert abs(ddp[0] - one[0]) / one[0] < 0.25
    tail = lambda xs: sum(xs[-10:]) / 10
    assert abs(tail(ddp) - tail(one)) / tail(one) < 0.25 and tail(ddp) < ddp[0]
    history = json.loads((tmp_path / "ddp" / "history.json").read_text())
    assert history["steps"] == STEPS
