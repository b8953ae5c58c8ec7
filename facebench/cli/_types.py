"""Argparse types shared by every command: each checks its range before any work.

A value out of range is refused by argparse with one line naming the option, the allowed range
and the value given, exit 2. Lists use ``action="extend"`` (see :mod:`facebench.cli._options`).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

#: largest square image `data synth` draws (a 112 px face is the usual crop)
MAX_IMAGE_SIZE = 1024
#: largest input side an ONNX model may be told it takes (--size)
MAX_INPUT_SIZE = 4096
#: seeds are 32-bit, as numpy's and most tools' are
MAX_SEED = 2**32 - 1
#: ONNX opsets `export` writes: those of torch's TorchScript exporter
MIN_OPSET, MAX_OPSET = 7, 20
#: the largest `data synth` difficulty (at 1000 the renderer's geometry overflows)
MAX_DIFFICULTY = 10.0
#: processes one command may start
MAX_WORKERS = 256


def integer(low: int, high: int | None = None) -> Callable[[str], int]:
    """An integer in ``[low, high]`` (no upper bound when ``high`` is None)."""
    allowed = f"an integer from {low} to {high}" if high is not None else f"an integer >= {low}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {allowed}, got {text!r}") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"expected {allowed}, got {value}")
        return value

    parse.__name__ = "integer"
    return parse


def real(
    low: float | None = None,
    high: float | None = None,
    *,
    above: bool = False,
    below: bool = False,
) -> Callable[[str], float]:
    """A finite number in the range ``[low, high]``; ``above``/``below``: ``low``/``high``
    themselves excluded; None: no bound on that side."""
    parts = []
    if low is not None:
        parts.append(f"{'>' if above else '>='} {low:g}")
    if high is not None:
        parts.append(f"{'<' if below else '<='} {high:g}")
    allowed = "a finite number" + (" " + " and ".join(parts) if parts else "")

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {allowed}, got {text!r}") from None
        too_low = low is not None and (value <= low if above else value < low)
        too_high = high is not None and (value >= high if below else value > high)
        if not math.isfinite(value) or too_low or too_high:
            raise argparse.ArgumentTypeError(f"expected {allowed}, got {text}")
        return value

    parse.__name__ = "number"
    return parse


def path(text: str) -> str:
    """A file or folder name: not empty, no NUL byte."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a path, got an empty string")
    if "\0" in text:
        raise argparse.ArgumentTypeError(f"a path cannot hold a NUL byte, got {text!r}")
    return text


POSITIVE = integer(1)
COUNT = integer(0)
SEED = integer(0, MAX_SEED)
WORKERS = integer(1, MAX_WORKERS)
#: a false accept rate (or FPIR): above 0, at most 1
RATE = real(0.0, 1.0, above=True)
#: a cosine threshold
COSINE = real(-1.0, 1.0)
POSITIVE_REAL = real(0.0, above=True)
DIFFICULTY = real(0.0, MAX_DIFFICULTY)
