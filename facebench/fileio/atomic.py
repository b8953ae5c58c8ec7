"""Atomic writes: every file and folder facebench writes goes through here.

A file is written under a temporary name in its own directory and renamed into place only when
it is complete; on any failure the temporary is removed (and so are parent folders the write
created), so a reader sees the old file or the whole new one, never a part. Temporaries are
named ``.<name>.fbtmp-<pid>-<token>[suffix]``; one left by a killed process is removed by the
next write of the same name and listed by :func:`stale_temporaries`. Files get the permissions
the umask gives (0644 under umask 022), folders likewise (0755).

A write that fails (disk full, file too large, I/O error) raises :class:`WriteError` naming the
path and the cause. :func:`staged` publishes several files together: nothing is renamed into
place until the block ends, and nothing is left if it fails.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import math
import os
import re
import secrets
import shutil
from collections.abc import Iterator

from facebench.errors import DataError, FacebenchError, WriteError

log = logging.getLogger(__name__)

TEMP_TAG = ".fbtmp-"
_TEMP_NAME = re.compile(r"^\.(?P<target>.+)\.fbtmp-(?P<pid>\d+)-[0-9a-f]{8}(\.[^.]+)?$")
_STAGES: list[list] = []  # open staged() blocks, innermost last


def temporary_name(path: str | os.PathLike, suffix: str = "") -> str:
    """A fresh name beside ``path`` in the one temporary scheme (same directory, so the rename
    is atomic); ``suffix`` keeps an extension that a writer needs."""
    directory, base = os.path.split(os.path.abspath(path))
    return os.path.join(directory, f".{base}{TEMP_TAG}{os.getpid()}-{secrets.token_hex(4)}{suffix}")


def check_not_temporary(path: str | os.PathLike) -> None:
    """DataError when ``path`` is, or lies inside, a temporary of this scheme: an output still
    being written or left by an interrupted write, never a complete input."""
    parts = os.path.abspath(path).split(os.sep)
    for i, part in enumerate(parts):
        if _TEMP_NAME.match(part):
            kind = "folder" if os.path.isdir(os.sep.join(parts[: i + 1])) else "file"
            raise DataError(
                f"{path}: {part} is a temporary {kind} left by an interrupted write (or one "
                "still running), not a complete output; remove it and write the output again"
            )


def stale_temporaries(directory: str | os.PathLike, target: str | None = None) -> list[str]:
    """Temporaries in ``directory`` left by processes that no longer run (of ``target`` only,
    when given)."""
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    found = []
    for name in sorted(names):
        m = _TEMP_NAME.match(name)
        if m and (target is None or m["target"] == target) and not _alive(int(m["pid"])):
            found.append(os.path.join(directory, name))
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def _remove_stale(path: str) -> None:
    directory, base = os.path.split(os.path.abspath(path))
    for stale in stale_temporaries(directory, base):
        log.info("removing %s (left by an interrupted write)", stale)
        _remove(stale)


def _make_parents(directory: str) -> list[str]:
    """Create ``directory`` and missing parents; return the folders created, outermost first."""
    created = []
    current = os.path.abspath(directory)
    while not os.path.exists(current):
        created.append(current)
        current = os.path.dirname(current)
    for folder in reversed(created):
        with contextlib.suppress(FileExistsError):
            os.mkdir(folder)
    return list(reversed(created))


def remove_created(created: list[str]) -> None:
    """Remove the folders :func:`make_parents` created, innermost first, while they are empty
    (one already gone, e.g. removed by another process, is passed over)."""
    for folder in reversed(created):
        try:
            os.rmdir(folder)
        except FileNotFoundError:
            continue
        except OSError:
            break


def _write_failure(path: str, exc: BaseException) -> WriteError | None:
    """A WriteError naming ``path`` and the cause of ``exc`` when it is a failed write: an
    OSError with an errno in its chain (torch wraps them in RuntimeError), or any error while
    the file system is full (numpy reports ``N requested and M written``). A FacebenchError
    already says what failed (e.g. an input that cannot be read) and is kept as it is."""
    if isinstance(exc, FacebenchError):
        return None
    seen = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno is not None:
            reason = seen.strerror or errno.errorcode.get(seen.errno, str(seen.errno))
            return WriteError(f"{path}: cannot write ({reason}); nothing was written")
        seen = seen.__cause__ or seen.__context__
    if isinstance(exc, Exception) and _full(os.path.dirname(os.path.abspath(path))):
        return WriteError(f"{path}: cannot write (No space left on device); nothing was written")
    return None


def _full(directory: str) -> bool:
    try:
        stat = os.statvfs(directory)
    except OSError:
        return False
    return stat.f_bavail == 0


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[str]:
    """Yield a temporary file name (created empty, umask permissions) for a writer that takes
    a path; on success it replaces ``path``, on failure it is removed. A symbolic link is
    written through: the file it points to is replaced and the link stays."""
    path = through_links(str(path))
    created = make_parents(os.path.dirname(os.path.abspath(path)), path)
    _remove_stale(path)
    tmp = temporary_name(path, suffix)
    with _undone_on_failure(path, tmp, created):
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        yield tmp
        _publish(tmp, path, created)


def through_links(path: str) -> str:
    """``path``, or the file its symbolic link (or chain of links) points to; WriteError for a
    link that loops."""
    if not os.path.islink(path):
        return path
    target = os.path.realpath(path)
    if os.path.islink(target):
        raise WriteError(f"{path}: a symbolic link that loops; cannot write through it")
    return target


@contextlib.contextmanager
def _undone_on_failure(path: str, tmp: str, created: list[str]) -> Iterator[None]:
    """On any failure in the block: remove ``tmp`` and the folders created for ``path``, and
    raise a failed write as WriteError."""
    try:
        yield
    except BaseException as exc:
        _remove(tmp)
        remove_created(created)
        failure = _write_failure(path, exc)
        if failure is not None:
            raise failure from exc
        raise


def make_parents(directory: str, path: str) -> list[str]:
    """Create ``directory`` and missing parents (WriteError naming ``path`` when it cannot be
    created); return the folders created, outermost first."""
    try:
        return _make_parents(directory)
    except OSError as exc:
        raise WriteError(f"{path}: cannot create its folder ({exc.strerror})") from exc


def _publish(tmp: str, path: str, created: list[str]) -> None:
    """Rename now, or at the end of the innermost :func:`staged` block."""
    if _STAGES:
        _STAGES[-1].append((tmp, path, created))
    else:
        os.replace(tmp, path)


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, mode: str = "wb", **kwargs) -> Iterator:
    """Yield an open file (``mode`` "wb" or "w", ``open`` keywords) that replaces ``path`` when
    the block ends without error."""
    with atomic_path(path) as tmp, open(tmp, mode, **kwargs) as f:
        yield f


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[str]:
    """Yield a new temporary folder that becomes ``path`` (which must not exist) on success and
    is removed with its contents on failure."""
    path = str(path).rstrip(os.sep) or str(path)
    if os.path.lexists(path):
        raise WriteError(f"{path}: already exists; remove it or choose another output")
    created = make_parents(os.path.dirname(os.path.abspath(path)), path)
    _remove_stale(path)
    tmp = temporary_name(path)
    with _undone_on_failure(path, tmp, created):
        os.mkdir(tmp, 0o777)
        yield tmp
        if os.path.lexists(path):
            raise WriteError(f"{path}: appeared while it was being written; kept as it is")
        _publish(tmp, path, created)


@contextlib.contextmanager
def scratch_dir(near: str | os.PathLike, suffix: str = ".scratch") -> Iterator[str]:
    """Yield a new empty folder beside ``near`` (a temporary name of it) for intermediate files;
    it is removed with its contents when the block ends, however it ends."""
    near = str(near).rstrip(os.sep) or str(near)
    created = make_parents(os.path.dirname(os.path.abspath(near)), near)
    _remove_stale(near)
    tmp = temporary_name(near, suffix)
    try:
        try:
            os.mkdir(tmp, 0o777)
        except OSError as exc:
            raise WriteError(f"{tmp}: cannot create a scratch folder ({exc.strerror})") from exc
        yield tmp
    finally:
        _remove(tmp)
        remove_created(created)


@contextlib.contextmanager
def staged() -> Iterator[None]:
    """Publish every file written in the block together at its end; on failure none of them
    (and no folder they created) is left. Files are not readable under their names until then."""
    pending: list = []
    _STAGES.append(pending)
    try:
        yield
    except BaseException:
        _STAGES.pop()
        for tmp, _, created in reversed(pending):
            _remove(tmp)
            remove_created(created)
        raise
    _STAGES.pop()
    for tmp, path, _ in pending:
        _publish(tmp, path, [])


@contextlib.contextmanager
def unstaged() -> Iterator[None]:
    """Files written in the block are renamed into place at once, also inside :func:`staged`:
    for intermediate files that other processes read before the staged block ends."""
    outer = _STAGES[:]
    _STAGES.clear()
    try:
        yield
    finally:
        _STAGES[:] = outer


def write_bytes(path: str | os.PathLike, data: bytes) -> str:
    """Write ``data`` to ``path`` atomically; return the path."""
    with atomic_file(path, "wb") as f:
        f.write(data)
    return str(path)


def write_text(path: str | os.PathLike, text: str) -> str:
    """Write ``text`` (UTF-8) to ``path`` atomically; return the path."""
    with atomic_file(path, "w", encoding="utf-8") as f:
        f.write(text)
    return str(path)


def append_text(path: str | os.PathLike, text: str) -> None:
    """Append ``text`` to ``path`` (created if missing); a failed append is cut back off, so
    the file keeps only whole appends."""
    path = str(path)
    data = memoryview(text.encode("utf-8"))
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    except OSError as exc:
        raise WriteError(f"{path}: cannot write ({exc.strerror})") from exc
    try:
        start = os.lseek(fd, 0, os.SEEK_END)
        while data:
            data = data[os.write(fd, data) :]
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, start)
        raise WriteError(f"{path}: cannot write ({exc.strerror}); the append was undone") from exc
    finally:
        os.close(fd)


def _finite(value):
    """NaN and infinities become None so every JSON file is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def write_json(path: str | os.PathLike, data: dict) -> str:
    """Write ``data`` as indented strict JSON (NaN/inf as null) atomically; return the path."""
    return write_text(path, json.dumps(_finite(data), indent=1, allow_nan=False) + "\n")


def read_json(path: str | os.PathLike) -> dict:
    """A JSON object from ``path``; DataError naming the file when missing or malformed."""
    try:
        with open(path) as f:
            data = json.load(f)
    except OSError as exc:
        raise DataError(f"{path}: cannot read JSON ({exc.strerror})") from exc
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from exc
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not valid JSON (not UTF-8 text at byte {exc.start})") from exc
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data
