"""Multi-process training on PyTorch's own engine: ``torchrun --nproc_per_node=N -m course_utils train ...``.

torchrun starts N copies of the command and sets ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE`` in each one's
environment. :func:`init` joins them into one process group (gloo on CPUs, nccl on GPUs, one GPU per process), and
:class:`course_utils.train.Trainer` then wraps the model in ``DistributedDataParallel``: every process computes the
loss on its own shard of each batch, and DDP averages the gradients, so N processes with batch B/N each take the
same step as one process with batch B. Only rank 0 writes checkpoints, progress bars and figures.

Without torchrun (no ``WORLD_SIZE``, or 1) training runs in one process: :func:`active` is False, the helpers
(:func:`mean`, :func:`is_main`, ...) act as for a single process, and :func:`init` refuses with a clear error.
"""
from __future__ import annotations

import os

import torch

from course_utils.errors import CourseError


def world_size() -> int:
    """The number of processes torchrun started (1 without torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    """This process's rank, 0 .. world_size() - 1 (0 without torchrun)."""
    return int(os.environ.get("RANK", "0"))


def is_main() -> bool:
    """Whether this process writes files and prints progress (rank 0)."""
    return rank() == 0


def active() -> bool:
    """Whether a process group of more than one process is running."""
    return world_size() > 1 and torch.distributed.is_available() and torch.distributed.is_initialized()


def init(device: torch.device | str | None = None) -> torch.device:
    """Join torchrun's process group (once) and return this process's device: ``cuda:LOCAL_RANK`` with nccl when
    CUDA is available and not overridden by ``device``, else the CPU with gloo."""
    if world_size() <= 1:
        raise CourseError("init() joins a torchrun process group; this process was not started by torchrun "
                          "(WORLD_SIZE is not above 1). Fix: torchrun --nproc_per_node=2 -m course_utils train ...")
    dev = torch.device(device) if device is not None else (
        torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0"))) if torch.cuda.is_available() else torch.device("cpu"))
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    elif dev.type != "cpu":
        raise CourseError(f"multi-process training runs on CPUs (gloo) or CUDA GPUs (nccl), not on {dev.type}.")
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return dev


def mean(value: float, device: torch.device | str = "cpu") -> float:
    """The mean of ``value`` over all processes (``value`` itself without a process group)."""
    if not active():
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    torch.distributed.all_reduce(t)
    return float(t) / world_size()


def barrier() -> None:
    if active():
        torch.distributed.barrier()


def shutdown() -> None:
    """Leave the process group (at the end of a torchrun command)."""
    if active():
        torch.distributed.destroy_process_group()
