"""The ground floor: what the machine is and how files are written, with no knowledge of models or training.

- :func:`pick_device`: the device to compute on (cuda, then Apple's mps, else the CPU; ``$COURSE_DEVICE`` forces one);
- :func:`hardware`, :func:`cpu_model`: what a measurement ran on, for manifests and benchmarks;
- :func:`git_commit`: the course checkout's commit, for manifests;
- :func:`atomic_write_bytes`, :func:`atomic_write_text`: write a file whole or not at all (a temporary file in the
  same folder, then a rename), so an interrupted run never leaves half a checkpoint or half a JSON file;
- :func:`ensure_writable`: create an output folder, or say clearly why it cannot be written to.
"""
from __future__ import annotations

import os
import platform
import subprocess
import tempfile
from pathlib import Path

import torch

from course_utils.errors import CourseError
from course_utils.paths import find_home


def pick_device(prefer: str | None = None) -> torch.device:
    """cuda if available, then Apple's mps, else cpu. ``prefer`` (or $COURSE_DEVICE) forces one."""
    prefer = prefer or os.environ.get("COURSE_DEVICE")
    if prefer:
        if prefer.startswith("cuda") and not torch.cuda.is_available():
            raise CourseError(f"device {prefer!r} was asked for but CUDA is not available here. Fix: unset "
                              "COURSE_DEVICE or use 'cpu'.")
        return torch.device(prefer)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def git_commit() -> str:
    """The course checkout's current commit (for manifests), or "unknown" outside a git checkout."""
    folder = find_home()
    if folder is None:
        return "unknown"
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True, timeout=10)
        return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def cpu_model() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), for manifests and benchmarks."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def hardware() -> dict:
    """What a measurement ran on: CPU, torch version, threads, GPU (None on a CPU)."""
    return {"cpu": cpu_model(), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def ensure_writable(folder: str | Path) -> None:
    """Create ``folder`` if needed; a clear :class:`CourseError` if it cannot be created or written to."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CourseError(f"cannot create the output folder {folder}: {e.strerror}. Fix: choose a folder you can "
                          "write to (e.g. --out runs/mine).") from e
    if not os.access(folder, os.W_OK):
        raise CourseError(f"the output folder {folder} is not writable. Fix: choose another folder (--out) "
                          "or change its permissions.")


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` whole or not at all: a temporary file beside it, flushed to disk, then renamed."""
    path = Path(path)
    ensure_writable(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)  # mkstemp makes 0600 files; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """:func:`atomic_write_bytes` for text (UTF-8)."""
    atomic_write_bytes(path, text.encode())
