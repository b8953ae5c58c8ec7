"""Report JSON files: written atomically, read back with errors that name the file."""

from __future__ import annotations

import json
import math
import os
import tempfile

from facebench.errors import DataError


def _finite(value):
    """NaN and infinities become None so every report is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def write_json(path: str, data: dict) -> str:
    """Write ``data`` as indented JSON to ``path`` (temporary name, then rename); return path."""
    path = str(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", dir=directory)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(_finite(data), f, indent=1, allow_nan=False)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return path


def read_json(path: str) -> dict:
    """Read a report JSON object; DataError naming the file when it is missing or malformed."""
    try:
        with open(path) as f:
            data = json.load(f)
    except OSError as exc:
        raise DataError(f"{path}: cannot read report ({exc.strerror})") from exc
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from exc
    if not isinstance(data, dict):
        raise DataError(f"{path}: a report must be a JSON object, got {type(data).__name__}")
    return data
