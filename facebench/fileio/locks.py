"""File locks: an OS lock (``flock``) held while one process updates an output."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Iterator

from facebench.errors import WriteError

log = logging.getLogger(__name__)


@contextlib.contextmanager
def exclusive(path: str | os.PathLike, wait: bool, what: str = "output") -> Iterator[None]:
    """Hold an OS lock (``flock``) on the existing file or folder ``path`` for the block.

    Another process holding it: wait for it (``wait``) or raise WriteError. A file replaced
    while waiting is locked again under its new inode, so the holder always sees the latest.
    """
    path = str(path)
    while True:
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError as exc:
            raise WriteError(f"{path}: cannot open to lock ({exc.strerror})") from exc
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if not wait:
                    raise WriteError(
                        f"{path}: {what} in use by another facebench process; wait for it to "
                        "finish or choose another path"
                    ) from None
                log.info("%s: in use by another process, waiting", path)
                fcntl.flock(fd, fcntl.LOCK_EX)
            if _same_file(fd, path):
                break
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
    try:
        yield
    finally:
        os.close(fd)


def _same_file(fd: int, path: str) -> bool:
    try:
        now = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (held.st_dev, held.st_ino) == (now.st_dev, now.st_ino)
