"""Head parameters: the kinds of allowed values a head declares in its ``ranges``, and the checks.

A ``ranges`` entry is an :class:`Interval` (a number), ``FLAG`` (true or false) or a tuple of
allowed strings. Every check raises one ConfigError line naming the head, the parameter and what
it allows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import MappingProxyType

from facebench.errors import ConfigError


@dataclass(frozen=True)
class Interval:
    """A real interval; ``None`` ends are unbounded, ``*_open`` ends are excluded."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def __contains__(self, x: float) -> bool:
        above = self.low is None or (x > self.low if self.low_open else x >= self.low)
        below = self.high is None or (x < self.high if self.high_open else x <= self.high)
        return math.isfinite(x) and above and below

    def __str__(self) -> str:
        low = "-inf" if self.low is None else f"{self.low:g}"
        high = "inf" if self.high is None else f"{self.high:g}"
        left = "(" if self.low is None or self.low_open else "["
        right = ")" if self.high is None or self.high_open else "]"
        return f"{left}{low}, {high}{right}"


POSITIVE = Interval(0, None, low_open=True)
NON_NEGATIVE = Interval(0, None)
FINITE = Interval()
OPEN_UNIT = Interval(0, 1, low_open=True, high_open=True)
RATIO = Interval(0, 1, low_open=True)  # (0, 1]

FLAG = bool  # a ``ranges`` entry: the parameter is true or false


def allowed(**entries) -> MappingProxyType:
    """A head's ``ranges``, read-only: ``ranges = allowed(h=POSITIVE, momentum=RATIO)``."""
    return MappingProxyType(entries)


def fail(head: str, message: str) -> ConfigError:
    """The one-line error for head ``head``."""
    return ConfigError(f"head {head!r}: {message}")


def check_param(head: str, key: str, value, allowed: Interval | type | tuple):
    """``value`` checked against its ``ranges`` entry ``allowed``: a float, a bool or a choice."""
    if allowed is FLAG:
        return check_flag(head, key, value)
    if isinstance(allowed, tuple):
        return check_choice(head, key, value, allowed)
    return check_number(head, key, value, allowed)


def check_number(head: str, key: str, value, interval: Interval) -> float:
    """``value`` as a float inside ``interval``."""
    if isinstance(value, bool):
        raise fail(head, f"parameter {key}={value!r} is not a number (allowed: {interval})")
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise fail(
            head, f"parameter {key}={value!r} is not a number (allowed: {interval})"
        ) from None
    if number not in interval:
        raise fail(head, f"parameter {key}={value!r} is outside the allowed range {interval}")
    return number


def check_flag(head: str, key: str, value) -> bool:
    """``value`` if it is a bool."""
    if not isinstance(value, bool):
        raise fail(head, f"parameter {key}={value!r} must be true or false")
    return value


def check_choice(head: str, key: str, value, choices) -> str:
    """``value`` if it is one of ``choices``."""
    if value not in choices:
        raise fail(head, f"parameter {key}={value!r} must be one of {', '.join(choices)}")
    return value


def check_size(name: str, value) -> int:
    """``value`` as a positive int (embedding_size, num_classes)."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"head parameter {name}={value!r} must be a positive integer")
    return value
