"""Embeddings on disk: a float32 ``.npy`` and a JSON sidecar beside it (``E.npy`` -> ``E.json``)."""

from __future__ import annotations

import os

import numpy as np

from facebench.embedding_rows import row_norms
from facebench.errors import DataError
from facebench.fileio import atomic_file, read_json, staged, write_json

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
    meta = {"format": SIDECAR_FORMAT, "count": len(emb), "dim": int(emb.shape[1]), **sidecar}
    with staged():
        with atomic_file(path) as f:
            np.lib.format.write_array_header_1_0(f, np.lib.format.header_data_from_array_1_0(emb))
            f.write(emb.data)  # file.write reports a full disk with its errno, ndarray.tofile not
        side = write_json(sidecar_path(path), meta)
    return str(path), side


def load_embeddings(path: str, sidecar: str | None = None) -> tuple[np.ndarray, dict | None]:
    """float32 ``(N, d)`` rows and the sidecar (``sidecar`` or the one beside ``path``, if any).

    The rows are checked (:func:`facebench.embedding_rows.row_norms`): errors name ``path``."""
    try:
        emb = np.load(path, allow_pickle=False)
    except FileNotFoundError as exc:
        raise DataError(f"{path}: embeddings file is missing") from exc
    except (OSError, ValueError, EOFError) as exc:
        reason = str(exc) or type(exc).__name__
        raise DataError(f"{path}: cannot read embeddings ({reason})") from exc
    if not isinstance(emb, np.ndarray):  # an .npz archive saved under a .npy name
        emb.close()
        raise DataError(f"{path}: not a .npy array (an .npz archive?); give one (N, d) .npy")
    if emb.ndim != 2 or emb.dtype.kind != "f":
        raise DataError(f"{path}: expected float (N, d) embeddings, got {emb.dtype} {emb.shape}")
    emb = emb.astype(np.float32, copy=False)
    row_norms(emb, path)
    side_path = sidecar or sidecar_path(path)
    if sidecar is None and not os.path.exists(side_path):
        return emb, None
    meta = read_json(side_path)
    if meta.get("count", len(emb)) != len(emb):
        raise DataError(
            f"{side_path}: sidecar describes {meta['count']} rows, {path} has {len(emb)}"
        )
    return emb, meta
