import gzip
import struct
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for the module: on a small, shared CPU two threads can fight and run slower."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


# --- a synthetic Fashion-MNIST ------------------------------------------------------------------------------
# Tests of *finding* and *reading* the dataset must not depend on which real copy this machine happens to have
# ($FASHION_MNIST_DIR, the repository's data/, /usr/share/datasets/fashion-mnist or torchvision's download), nor
# ever reach the network. `no_fashion_data` points every source at empty temporary folders; `fake_fashion`
# then writes four small, valid, gzipped IDX files and shrinks the expected item counts to match.

FAKE_N = {"train": 24, "test": 12}
STEMS = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def idx_bytes(array: np.ndarray) -> bytes:
    """An uint8 array as an IDX file: magic 0x00 0x00 0x08 <ndim>, the dims as big-endian int32, the data."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    return bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}i", *array.shape) + array.tobytes()


def write_fake_fashion(folder: Path, seed: int = 0, gz: bool = True) -> dict:
    """Four IDX files (gzipped unless ``gz`` is False) with FAKE_N random 28x28 images and labels 0..9 into
    ``folder``; returns {split: (images, labels)} as the numpy arrays written."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for split, n in FAKE_N.items():
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        rng.shuffle(labels)
        for stem, a in zip(STEMS[split], (images, labels)):
            raw = idx_bytes(a)
            if gz:
                (folder / (stem + ".gz")).write_bytes(gzip.compress(raw))
            else:
                (folder / stem).write_bytes(raw)
        arrays[split] = (images, labels)
    return arrays


@pytest.fixture
def no_fashion_data(tmp_path, monkeypatch):
    """Every place course_utils.data looks is an empty temporary folder, and the network is off.

    ``data.SYSTEM_DIR`` is read from $COURSE_SYSTEM_DATA_DIR when the module is imported, so the attribute is
    patched for this process and the variable for subprocesses (which inherit os.environ)."""
    from course_utils import data
    ns = SimpleNamespace(env_dir=tmp_path / "fashion_mnist_dir", cache=tmp_path / "cache",
                         system=tmp_path / "system")
    monkeypatch.delenv("FASHION_MNIST_DIR", raising=False)
    monkeypatch.setenv("COURSE_DATA_DIR", str(ns.cache))
    monkeypatch.setenv("COURSE_SYSTEM_DATA_DIR", str(ns.system))
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    monkeypatch.setattr(data, "SYSTEM_DIR", ns.system)
    return ns


@pytest.fixture
def fake_fashion(no_fashion_data, monkeypatch):
    """A synthetic Fashion-MNIST in $FASHION_MNIST_DIR (FAKE_N images per split), nothing anywhere else.

    ``data.FILES`` expects FAKE_N items in this process; a subprocess still expects 60000/10000, so there only
    errors raised before the item count is checked can be tested."""
    from course_utils import data
    ns = no_fashion_data
    ns.arrays = write_fake_fashion(ns.env_dir)
    monkeypatch.setenv("FASHION_MNIST_DIR", str(ns.env_dir))
    monkeypatch.setattr(data, "FILES", {s: (*STEMS[s], FAKE_N[s]) for s in FAKE_N})
    return ns


def run_cli(*args, env: dict | None = None) -> SimpleNamespace:
    """``python -m course_utils ARGS`` run in this process (no second torch import: seconds saved per call).

    Returns what a finished process would: returncode, stdout, stderr. An exception that escapes the command line
    is written to stderr as a traceback, exactly what a user would see."""
    import contextlib
    import io
    import os
    import traceback

    from course_utils.cli.main import main
    out, err = io.StringIO(), io.StringIO()
    saved = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main([str(a) for a in args])
            except SystemExit as e:  # argparse's own errors
                code = e.code if isinstance(e.code, int) else 2
            except Exception:
                traceback.print_exc()
                code = 1
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return SimpleNamespace(returncode=code, stdout=out.getvalue(), stderr=err.getvalue())
