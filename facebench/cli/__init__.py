"""The `facebench` command.

Each subcommand lives in its own module of this package and exposes ``register(subparsers)``,
which adds its parser and sets ``handler`` (a function taking the parsed ``args`` and returning
an exit status). Handlers import the library lazily so ``--help`` stays fast. This module only
parses arguments and turns :class:`facebench.errors.FacebenchError` into a one-line message.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys

from facebench import __version__
from facebench.errors import FacebenchError

DESCRIPTION = """\
facebench: train face models with normalized BCE heads (one unified bias) and the ArcFace,
CosFace and SoftMax baselines, evaluate them with one global threshold and the standard 10-fold
protocol, search galleries with faiss, and export embeddings and ONNX models.

Start with `facebench quickstart` (synthetic data, CPU, a few minutes)."""


def _command_modules() -> list[str]:
    """Names of the subcommand modules in this package, in alphabetical order."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, one subparser per command module."""
    parser = argparse.ArgumentParser(
        prog="facebench",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"facebench {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _command_modules():
        importlib.import_module(f"{__name__}.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(message)s",
    )
    logging.getLogger("faiss").setLevel(logging.WARNING)  # its loader logs every probe at INFO
    if getattr(args, "handler", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args.handler(args) or 0)
    except FacebenchError as exc:
        print(f"facebench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("facebench: interrupted", file=sys.stderr)
        return 130
