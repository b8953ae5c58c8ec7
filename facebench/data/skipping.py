"""``--skip-bad``: a bad item is an error, or (when asked) logged, counted and left out."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from facebench.errors import DataError

log = logging.getLogger(__name__)
T = TypeVar("T")


class BadItems:
    """Runs reads of single items; with ``skip`` on, a DataError is logged and recorded instead
    of raised. ``items`` lists what was skipped (the error messages, which name the item)."""

    def __init__(self, skip: bool = False):
        self.skip = skip
        self.items: list[str] = []

    def attempt(self, read: Callable[[], T]) -> T | None:
        """``read()``, or None after logging and recording its DataError when skipping."""
        try:
            return read()
        except DataError as exc:
            if not self.skip:
                raise
            log.warning("skipped: %s", exc)
            self.items.append(str(exc))
            return None
