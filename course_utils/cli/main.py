"""``python -m course_utils COMMAND``: one parser, its subcommands grouped by the layer they serve
(``cli.core``, ``cli.evaluation``, ``cli.study``). ``--help`` works on every command.

Every mistake a user can make surfaces as a :class:`course_utils.errors.CourseError`, printed as one line
that says what was wrong and how to fix it, with exit status 2 and no traceback.
"""
from __future__ import annotations

import argparse
import sys

from course_utils.cli import core, evaluation, study
from course_utils.cli.common import recorded_command
from course_utils.errors import CourseError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m course_utils",
                                description="Optimizing a DDPM U-Net on Fashion-MNIST: the course's command line.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    core.add_parsers(sub)
    evaluation.add_parsers(sub)
    study.add_parsers(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    args.command_line = recorded_command(argv)
    try:
        return args.func(args)
    except CourseError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; a checkpoint saved before the interruption is kept (continue with --resume).",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
