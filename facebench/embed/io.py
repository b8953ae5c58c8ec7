"""Embeddings on disk: a float32 ``.npy`` and a JSON sidecar beside it (``E.npy`` -> ``E.json``)."""

from __future__ import annotations

import os
import tempfile

import numpy as np

from facebench.errors import DataError
from facebench.report.jsonio import read_json, write_json

SIDECAR_FORMAT = "facebench-embeddings"


def sidecar_path(npy_path: str) -> str:
    """``E.npy`` -> ``E.json``."""
    return os.path.splitext(str(npy_path))[0] + ".json"


def save_embeddings(path: str, embeddings: np.ndarray, sidecar: dict) -> tuple[str, str]:
    """Write ``(N, d)`` float32 rows and the sidecar (``format``, ``count``, ``dim`` added)."""
    emb = np.ascontiguousarray(embeddings, dtype=np.float32)
    if emb.ndim != 2:
        raise DataError(f"{path}: embeddings must be (N, d), got shape {emb.shape}")
    for key in ("ids", "labels", "paths", "identities"):
        if sidecar.get(key) is not None and len(sidecar[key]) != len(emb):
            raise DataError(
                f"{path}: sidecar {key!r} has {len(sidecar[key])} entries, not {len(emb)}"
            )
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".npy", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, emb)
        meta = {"format": SIDECAR_FORMAT, "count": len(emb), "dim": int(emb.shape[1]), **sidecar}
        side = write_json(sidecar_path(path), meta)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return str(path), side


def load_embeddings(path: str, sidecar: str | None = None) -> tuple[np.ndarray, dict | None]:
    """float32 ``(N, d)`` rows and the sidecar (``sidecar`` or the one beside ``path``, if any)."""
    try:
        emb = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read embeddings ({exc})") from exc
    if emb.ndim != 2 or emb.dtype.kind != "f":
        raise DataError(f"{path}: expected float (N, d) embeddings, got {emb.dtype} {emb.shape}")
    side_path = sidecar or sidecar_path(path)
    if sidecar is None and not os.path.exists(side_path):
        return emb.astype(np.float32), None
    meta = read_json(side_path)
    if meta.get("count", len(emb)) != len(emb):
        raise DataError(
            f"{side_path}: sidecar describes {meta['count']} rows, {path} has {len(emb)}"
        )
    return emb.astype(np.float32), meta
