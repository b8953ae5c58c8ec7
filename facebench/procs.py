"""Processes that end with their command: workers die with their parent, SIGTERM ends the parent
as Ctrl-C does (its clean-ups run, it exits with its one "interrupted" line)."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
from collections.abc import Iterator

_PR_SET_PDEATHSIG = 1  # from <sys/prctl.h>


def _quiet_when_the_parent_left(kind, value, traceback) -> None:
    """A worker's excepthook: a connection to the parent cut off (the parent stopping, e.g. on
    SIGTERM, while it fetches a batch from the worker's resource sharer) is the parent's exit,
    not an error to print; anything else is printed as usual."""
    if not issubclass(kind, (ConnectionResetError, BrokenPipeError)):
        sys.__excepthook__(kind, value, traceback)


def die_with_parent(parent: int, worker_id: int | None = None) -> None:
    """In a child of process ``parent``: on Linux the kernel sends it SIGKILL when the parent
    dies (even by kill -9); it exits at once if the parent is already gone; a connection to the
    parent cut off is not printed. Also a DataLoader ``worker_init_fn`` as
    ``functools.partial(die_with_parent, os.getpid())`` (``worker_id`` unused)."""
    sys.excepthook = _quiet_when_the_parent_left
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the line above
        os._exit(1)


def worker_init(parent: int) -> None:
    """Initializer of a spawned pool worker of process ``parent``: one OpenCV thread, and the
    worker dies with its parent (a killed ``data synth`` or ``quickstart`` leaves none behind)."""
    import cv2

    cv2.setNumThreads(1)
    die_with_parent(parent)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While active, SIGTERM raises KeyboardInterrupt in the main thread, as Ctrl-C does: the
    command's clean-ups run (workers stopped, unfinished outputs removed) and `facebench` exits
    130 with one line. Off the main thread (where handlers cannot be set) it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
