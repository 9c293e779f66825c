"""The ``zippypoint`` command line: a thin dispatcher over library functions.

Each subcommand lives in ``zippypoint/commands/<name>.py`` and defines ``register(subparsers)``
which adds its parser and sets ``func`` to a callable taking the parsed args and returning an
exit code. Modules are imported only when the CLI runs, never on ``import zippypoint``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = (
    "extract",
    "match",
    "demo",
    "info",
    "train",
    "evaluate",
    "make_benchmark",
    "export",
    "benchmark",
    "vo",
    "evaluate_pose",
    "reconstruct",
    "localize",
)


def build_parser() -> argparse.ArgumentParser:
    from zippypoint import __version__

    parser = argparse.ArgumentParser(prog="zippypoint", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"zippypoint {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"zippypoint.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"zippypoint.commands.{name}":
                continue  # command not available in this build
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
