"""What every command shares: number parsers, the parent parsers of the options that commands repeat
(``VARIANT``, ``--budget``, ``--device``, ``--checkpoint``, the sampler), and the recorded command line."""
from __future__ import annotations

import argparse
import shlex
import sys


def positive(value: str) -> int:
    """argparse type: a whole number >= 1."""
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}")
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {n}")
    return n


def fraction(value: str) -> float:
    """argparse type: a number in [0, 1]."""
    try:
        x = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {value!r}")
    if not 0 <= x <= 1:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {x}")
    return x


def variant_parent() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("variant", metavar="VARIANT", help="a preset (python -m course_utils variants lists them) or, for sample "
                   "and evaluate, a shipped checkpoint such as optimized-final")
    return p


def budget_parent() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--budget", help="ci | quick | full (default: $COURSE_BUDGET, else full on a GPU, quick on a CPU)")
    return p


def device_parent() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--device", help="cpu | cuda | mps (default: $COURSE_DEVICE, else the best available)")
    return p


def checkpoint_parent() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--checkpoint", metavar="PATH", help="a .safetensors checkpoint of this preset (default: "
                   "checkpoints/VARIANT.safetensors, else runs/{full,quick,ci}/VARIANT-seed0/model.safetensors)")
    return p


def sampler_parent() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--sampler", default="ddpm", choices=["ddpm", "ddim"],
                   help="ddpm: all T ancestral steps (default); ddim: --steps deterministic-or-not DDIM steps")
    p.add_argument("--steps", type=positive, default=None, metavar="K",
                   help="DDIM steps (default 25; only with --sampler ddim)")
    p.add_argument("--eta", type=fraction, default=0.0,
                   help="DDIM noise: 0 deterministic (default), 1 as much as DDPM's posterior")
    return p


def sampler_kwargs(args) -> dict:
    """The keyword arguments of :func:`course_utils.diffusion.sample` chosen on the command line."""
    from course_utils.errors import CourseError
    if args.sampler == "ddpm" and (args.steps is not None or args.eta):
        raise CourseError("--steps and --eta belong to the DDIM sampler. Fix: add --sampler ddim, or leave them out.")
    return {"sampler": args.sampler, "steps": args.steps, "eta": args.eta}


def recorded_command(argv: list[str] | None = None) -> str:
    """The command line as typed, quoted with :func:`shlex.join` so that it can be pasted back into a shell."""
    argv = sys.argv[1:] if argv is None else argv
    return shlex.join(["python", "-m", "course_utils", *argv])
