"""The ``zippypoint`` command line: a thin dispatcher over library functions.

Each subcommand lives in ``zippypoint/commands/<name>.py`` and defines ``register(subparsers)``
which adds its parser and sets ``func`` to a callable taking the parsed args and returning an
exit code. Modules are imported only when the CLI runs, never on ``import zippypoint``.

Errors end in one line naming the problem and the fix: exit code 2 for usage errors (a bad option, an
unknown model, sample or output format: :class:`UsageError`, raised before any work starts) and 1 for
failed work (unreadable images, bad weights, a missing optional package). ``--debug`` or
``ZIPPYPOINT_DEBUG=1`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

EXIT_FAILED = 1  # the work was attempted and (partly) failed
EXIT_USAGE = 2  # the command line asked for something impossible; nothing was done

# optional packages -> the extra that installs them (for "pip install 'zippypoint[...]'")
EXTRAS = {
    "torch": "torch", "torchvision": "torch", "kornia": "torch", "onnx": "torch", "onnxscript": "torch",
    "safetensors": "torch", "skimage": "torch", "matplotlib": "torch", "PIL": "torch", "faiss": "eval",
    "openvino": "openvino", "coremltools": "coreml", "pycolmap": "sfm", "poselib": "sfm", "h5py": "sfm",
    "ray": "distributed", "pyarrow": "distributed",
}


class UsageError(ValueError):
    """The command line asks for something impossible (exit code 2); the message names the fix."""

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
    "distributed",
    "search",
)


def build_parser() -> argparse.ArgumentParser:
    from zippypoint import __version__

    parser = argparse.ArgumentParser(prog="zippypoint", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"zippypoint {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of an error (also ZIPPYPOINT_DEBUG=1)")
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


def missing_module_message(exc: ImportError) -> str:
    """One line for a missing optional package, naming the extra that installs it."""
    name = (getattr(exc, "name", None) or "").split(".")[0]
    extra = EXTRAS.get(name)
    if extra is None:
        return f"{exc}"
    return (f"this needs the optional package {name!r}, which is not installed here: "
            f"pip install 'zippypoint[{extra}]'")


def error_line(exc: BaseException) -> str:
    """The message of ``exc`` on one line."""
    if isinstance(exc, ImportError) and not isinstance(exc, UsageError):
        text = missing_module_message(exc)
    elif isinstance(exc, KeyError):
        text = f"missing key {exc.args[0]!r}" if exc.args else "missing key"
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split())


def _failure_types() -> tuple[type[BaseException], ...]:
    """Errors that mean failed work with a message for people (anything else is a bug: traceback)."""
    from zippypoint.model.weights import WeightsError

    types: list[type[BaseException]] = [WeightsError, ValueError, TypeError, OSError, ImportError, MemoryError]
    try:
        from zippypoint.methods import MethodUnavailable

        types.append(MethodUnavailable)
    except ImportError:
        pass
    return tuple(types)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = args.debug or os.environ.get("ZIPPYPOINT_DEBUG", "") not in ("", "0")
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except UsageError as exc:
        if debug:
            raise
        print(f"zippypoint {args.command}: error: {error_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except _failure_types() as exc:
        if debug:
            raise
        print(f"zippypoint {args.command}: error: {error_line(exc)} (--debug for the traceback)", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    # `python -m zippypoint.cli`: run the importable module's main, so that the commands raise the same
    # UsageError class that main catches (this file also runs as __main__, a second copy of the module)
    from zippypoint.cli import main as _main

    sys.exit(_main())
