"""The `facebench` command.

Each subcommand lives in its own module of this package and exposes ``register(subparsers)``,
which adds its parser and sets ``handler`` (a function taking the parsed ``args`` and returning
an exit status). Handlers import the library lazily so ``--help`` stays fast. This module only
parses arguments and turns :class:`facebench.errors.FacebenchError` (and a bad option) into a
one-line message; a reader that closes the output pipe early (``| head``) ends it quietly.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import importlib
import logging
import os
import pkgutil
import sys

from facebench import __version__
from facebench.errors import FacebenchError

DESCRIPTION = """\
facebench: train face models with a BCE head that learns one unified bias (UniFace's bce_u, beside
bce_d and bce_zero) or any of the registered baselines (softmax, normsoftmax, cosface, arcface,
adaface, curricularface, magface, sphereface2); evaluate them with one global threshold and the
standard 10-fold protocol; search galleries with faiss; export embeddings and ONNX models.

Start with `facebench quickstart` (synthetic data, CPU, a few minutes)."""


def _command_modules() -> list[str]:
    """Names of the subcommand modules in this package, in alphabetical order."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


class OneLineParser(argparse.ArgumentParser):
    """A parser whose errors are one line (the usage is in ``--help``); its subparsers are too."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


#: the exit status of an interrupted command (Ctrl-C, or SIGTERM through procs.sigterm_as_interrupt)
INTERRUPTED = 130


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, one subparser per command module."""
    parser = OneLineParser(
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
        status = int(args.handler(args) or 0)
        sys.stdout.flush()  # a closed pipe fails here, not at exit
        return status
    except BrokenPipeError:
        # the reader left: later writes (and the flush at exit) go nowhere
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # as a shell reports a process ended by SIGPIPE
    except FacebenchError as exc:
        print(f"facebench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("facebench: interrupted", file=sys.stderr)
        return INTERRUPTED


def run(entry=None) -> None:
    """The `facebench` program (or a script's ``entry``, a main returning its status): run it,
    then exit. An interrupted command leaves at once after its clean-ups and its one line: the
    interpreter's own teardown with torch loaded takes seconds, and a killed job must be gone
    within one."""
    try:
        status = (entry or main)()
    except KeyboardInterrupt:  # a script's main; facebench's own main says it itself
        print("facebench: interrupted", file=sys.stderr)
        status = INTERRUPTED
    if status == INTERRUPTED:
        atexit._run_exitfuncs()  # what exit runs first (multiprocessing's and logging's clean-up)
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError):
                stream.flush()
        os._exit(status)
    sys.exit(status)
