"""Output checks before any work: an output path can be created and written, a name read from
data is one safe path component."""

from __future__ import annotations

import contextlib
import os
import unicodedata

from facebench.errors import DataError, WriteError
from facebench.fileio.atomic import make_parents, remove_created, temporary_name, through_links


def check_file_name(name: str, source: str) -> str:
    """``name`` (an identity or file name read from ``source``) as one safe path component: not
    empty, not ``.`` or ``..``, no path separator, no control character (newline, NUL, ...),
    at most 255 bytes; else DataError naming it and ``source``. Returns ``name``."""
    problem = None
    if name in ("", ".", ".."):
        problem = "is not a file name"
    elif "/" in name or "\\" in name:
        problem = "holds a path separator"
    elif any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in name):
        problem = "holds a control character (a newline, tab, NUL, ...)"
    elif len(name.encode("utf-8", "surrogateescape")) > 255:
        problem = "is longer than 255 bytes"
    if problem:
        raise DataError(f"{source}: name {name!r} {problem}; rename it")
    return name


def _check_parent(path: str, option: str) -> None:
    """The nearest existing ancestor of ``path`` must be a writable folder (missing folders
    below it are created when the output is written)."""
    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.lexists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise WriteError(
            f"{parent}: is a file, not a folder; cannot create {path} ({option}): "
            "choose another path"
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise WriteError(f"{parent}: not writable; cannot create {path} ({option})")


#: Several processes checking one new folder at once (the ranks of a torchrun) can see it removed
#: by another's clean-up between creating it and writing in it: the check is tried again.
PROBE_TRIES = 5


def _try_write(directory: str, option: str) -> None:
    """Create ``directory`` (and missing parents) and write a byte to a new file in it, then
    remove both: a folder that cannot be written (read-only, /proc, a full disk) fails here,
    before any work, and nothing is left (the folder that was changed keeps its times)."""
    existing = os.path.abspath(directory)
    while not os.path.lexists(existing):
        existing = os.path.dirname(existing)
    times = os.stat(existing)
    try:
        for attempt in range(1, PROBE_TRIES + 1):
            try:
                _write_probe(directory)
                return
            except (FileNotFoundError, WriteError) as exc:
                vanished = FileNotFoundError in (type(exc), type(exc.__cause__))
                if not vanished or attempt == PROBE_TRIES:
                    raise
    except OSError as exc:  # a WriteError (a folder that cannot be created) passes as it is
        raise WriteError(
            f"{directory}: cannot write a file there ({exc.strerror}) ({option})"
        ) from exc
    finally:
        with contextlib.suppress(OSError):
            os.utime(existing, ns=(times.st_atime_ns, times.st_mtime_ns))


def _write_probe(directory: str) -> None:
    """Create ``directory`` and missing parents, write a byte to a new file there, remove both
    (OSError as raised; WriteError when a folder cannot be created)."""
    created = make_parents(directory, directory)
    probe = temporary_name(os.path.join(directory, "probe"))
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, b"\0")
        finally:
            os.close(fd)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(probe)
        remove_created(created)


def check_output_file(
    path: str | os.PathLike, option: str = "--out", overwrite: bool = False
) -> None:
    """Before any work: ``path`` can be created as a file (not a folder, not an existing file
    unless ``overwrite``, in a folder that exists or can be created and written); a symbolic
    link is checked as the file it points to."""
    path = through_links(str(path))
    if os.path.isdir(path):
        raise WriteError(f"{path}: is a folder; {option} needs a file name")
    if os.path.lexists(path) and not overwrite:
        raise WriteError(
            f"{path}: already exists; nothing was changed. Remove it or choose another {option}"
        )
    _check_parent(path, option)
    _try_write(os.path.dirname(os.path.abspath(path)), option)


def check_output_dir(
    path: str | os.PathLike,
    option: str = "--out",
    files: tuple[str, ...] = (),
    new: bool = False,
) -> None:
    """Before any work: ``path`` is a folder that exists or can be created (must not exist when
    ``new``) and written, and none of ``files`` (relative to it) would be overwritten."""
    path = str(path)
    if os.path.lexists(path):
        if not os.path.isdir(path):
            raise WriteError(f"{path}: is a file; {option} needs a folder")
        if new:
            raise WriteError(
                f"{path}: already exists; nothing was changed. Remove it or choose another {option}"
            )
        if not os.access(path, os.W_OK | os.X_OK):
            raise WriteError(f"{path}: not writable ({option})")
        for name in files:
            check_output_file(os.path.join(path, name), option)
        _try_write(path, option)
        return
    _check_parent(path, option)
    _try_write(os.path.dirname(os.path.abspath(path)) if new else path, option)
