"""What every command shares: number parsers, the parent parsers of the options that commands repeat
(``VARIANT``, ``--budget``, ``--device``, ``--checkpoint``, the sampler), and the recorded command line."""
from __future__ import annotations

import argparse
import shlex
import sys

from course_utils.errors import CourseError


def _number(cast, ok, want: str, doc: str):
    """An argparse type: ``cast`` the text, then require ``ok(value)``; errors say what was ``want``ed."""
    def parse(value: str):
        try:
            x = cast(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {want}, got {value!r}") from None
        if not ok(x):
            raise argparse.ArgumentTypeError(f"expected {want}, got {x}")
        return x
    parse.__doc__ = doc
    return parse


positive = _number(int, lambda n: n >= 1, "a whole number >= 1", "argparse type: a whole number >= 1.")
positive_float = _number(float, lambda x: x > 0 and x != float("inf"), "a number > 0", "argparse type: a number > 0.")
fraction = _number(float, lambda x: 0 <= x <= 1, "a number between 0 and 1", "argparse type: a number in [0, 1].")


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
    if args.sampler == "ddpm" and (args.steps is not None or args.eta):
        raise CourseError("--steps and --eta belong to the DDIM sampler. Fix: add --sampler ddim, or leave them out.")
    return {"sampler": args.sampler, "steps": args.steps, "eta": args.eta}


def recorded_command(argv: list[str] | None = None) -> str:
    """The command line as typed, quoted with :func:`shlex.join` so that it can be pasted back into a shell."""
    argv = sys.argv[1:] if argv is None else argv
    return shlex.join(["python", "-m", "course_utils", *argv])
