"""Embeddings on disk: a float32 ``.npy`` and a JSON sidecar beside it (``E.npy`` -> ``E.json``)."""

from __future__ import annotations

import math
import os

import numpy as np

from facebench.embedding_rows import row_norms
from facebench.errors import DataError
from facebench.fileio import atomic_file, atomic_path, read_json, staged, write_json

SIDECAR_FORMAT = "facebench-embeddings"


def sidecar_path(npy_path: str) -> str:
    """``E.npy`` -> ``E.json``."""
    return os.path.splitext(str(npy_path))[0] + ".json"


def _sidecar_meta(path: str, count: int, dim: int, sidecar: dict) -> dict:
    """The sidecar with ``format``, ``count`` and ``dim``; its per-row lists must have ``count``
    entries."""
    for key in ("ids", "labels", "paths", "identities"):
        if sidecar.get(key) is not None and len(sidecar[key]) != count:
            raise DataError(f"{path}: sidecar {key!r} has {len(sidecar[key])} entries, not {count}")
    return {"format": SIDECAR_FORMAT, "count": count, "dim": dim, **sidecar}


def read_sidecar(path: str, rows: int) -> dict:
    """The sidecar at ``path`` of a file of ``rows`` embeddings, checked: its ``count`` and
    per-row lists match ``rows``; ``ids`` and ``labels`` are integers (not bools), ``identities``
    all integers or all strings."""
    meta = read_json(path)
    if meta.get("count", rows) != rows:
        raise DataError(f"{path}: sidecar describes {meta['count']} rows, the embeddings {rows}")
    for key in ("ids", "labels", "paths", "identities"):
        values = meta.get(key)
        if values is None:
            continue
        if not isinstance(values, list) or len(values) != rows:
            size = f"{len(values)} entries" if isinstance(values, list) else repr(values)[:40]
            raise DataError(f"{path}: sidecar {key!r} is {size}, not a list of {rows}")
        kinds = (int,) if key in ("ids", "labels") else (str,) if key == "paths" else (int, str)
        first = type(values[0]) if values else int
        for i, value in enumerate(values):
            if type(value) not in kinds or (key == "identities" and type(value) is not first):
                kind = " or ".join(k.__name__ for k in kinds)
                raise DataError(
                    f"{path}: sidecar {key!r} entry {i} is {value!r}; entries are {kind} "
                    f"(one kind throughout, bools are not {kind})"
                )
    return meta


def npy_header(path: str) -> tuple[tuple[int, ...], np.dtype, int]:
    """``(shape, dtype, data offset)`` of a ``.npy`` from its header alone, checked against
    the file's size before anything is allocated; C order (what ``np.save`` writes for rows),
    no objects."""
    try:
        with open(path, "rb") as f:
            if f.read(4) == b"PK\x03\x04":
                raise DataError(
                    f"{path}: not a .npy array (an .npz archive?); give one (N, d) .npy"
                )
            f.seek(0)
            version = np.lib.format.read_magic(f)
            readers = {(1, 0): np.lib.format.read_array_header_1_0}
            readers[2, 0] = np.lib.format.read_array_header_2_0
            if version not in readers:
                raise ValueError(
                    f".npy version {version[0]}.{version[1]} (facebench reads 1.0, 2.0)"
                )
            shape, fortran_order, dtype = readers[version](f)
            offset = f.tell()
            size = os.fstat(f.fileno()).st_size
    except FileNotFoundError as exc:
        raise DataError(f"{path}: embeddings file is missing") from exc
    except (OSError, ValueError, EOFError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise DataError(f"{path}: cannot read embeddings ({reason})") from exc
    if dtype.hasobject:
        raise DataError(f"{path}: holds Python objects ({dtype}), not numbers")
    if fortran_order and len(shape) > 1:
        raise DataError(
            f"{path}: a Fortran-order (column-major) .npy; facebench reads rows in C order: "
            "save it with np.save(path, np.ascontiguousarray(x))"
        )
    needed = math.prod(shape) * dtype.itemsize
    if needed > size - offset:
        raise DataError(
            f"{path}: header says {dtype} {shape} ({needed:,} bytes), the file holds "
            f"{size - offset:,} after its header (truncated or not written by numpy)"
        )
    return shape, dtype, offset


def write_rows(path: str, embeddings: np.ndarray) -> str:
    """Write ``(N, d)`` float32 rows as a ``.npy`` (atomically, no sidecar); return the path."""
    emb = np.ascontiguousarray(embeddings, dtype=np.float32)
    if emb.ndim != 2:
        raise DataError(f"{path}: embeddings must be (N, d), got shape {emb.shape}")
    with atomic_file(path) as f:
        np.lib.format.write_array_header_1_0(f, np.lib.format.header_data_from_array_1_0(emb))
        f.write(emb.data)  # file.write reports a full disk with its errno, ndarray.tofile not
    return str(path)


def save_embeddings(path: str, embeddings: np.ndarray, sidecar: dict) -> tuple[str, str]:
    """Write ``(N, d)`` float32 rows and the sidecar (``format``, ``count``, ``dim`` added)."""
    emb = np.asarray(embeddings)
    if emb.ndim != 2:
        raise DataError(f"{path}: embeddings must be (N, d), got shape {emb.shape}")
    meta = _sidecar_meta(path, len(emb), int(emb.shape[1]), sidecar)
    with staged():
        write_rows(path, emb)
        side = write_json(sidecar_path(path), meta)
    return str(path), side


def shards_shape(shards: list[str]) -> tuple[int, int]:
    """``(total rows, d)`` of float32 ``.npy`` shards that agree on ``d`` (headers only)."""
    count, dim = 0, None
    for shard in shards:
        rows = np.load(shard, mmap_mode="r", allow_pickle=False)
        if rows.ndim != 2 or rows.dtype != np.float32:
            raise DataError(f"{shard}: expected float32 (N, d) rows, got {rows.dtype} {rows.shape}")
        if dim is not None and rows.shape[1] != dim:
            raise DataError(
                f"{shard}: rows of {rows.shape[1]} values, the shards before have {dim}"
            )
        count, dim = count + rows.shape[0], rows.shape[1]
    if dim is None:
        raise DataError("no embedding shards to assemble")
    return count, dim


def assemble_rows(shards: list[str], out: np.ndarray, block_bytes: int = 1 << 26) -> None:
    """Copy the rows of ``shards`` (``.npy``, in order) into ``out``, ``block_bytes`` at a time:
    no shard is read into memory whole."""
    offset = 0
    for shard in shards:
        rows = np.load(shard, mmap_mode="r", allow_pickle=False)
        step = max(1, block_bytes // max(1, rows.itemsize * rows.shape[1]))
        for start in range(0, len(rows), step):
            block = rows[start : start + step]
            out[offset + start : offset + start + len(block)] = block
        offset += len(rows)


def save_embedding_shards(path: str, shards: list[str], sidecar: dict) -> tuple[str, str]:
    """As :func:`save_embeddings` for rows held in ``.npy`` shards (in order): they are streamed
    into ``path`` through a memory map, never all in memory."""
    count, dim = shards_shape(shards)
    meta = _sidecar_meta(path, count, dim, sidecar)
    with staged():
        with atomic_path(path) as tmp:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(count, dim))
            assemble_rows(shards, out)
            out.flush()
            del out
        side = write_json(sidecar_path(path), meta)
    return str(path), side


def load_embeddings(path: str, sidecar: str | None = None) -> tuple[np.ndarray, dict | None]:
    """float32 ``(N, d)`` rows and the sidecar (``sidecar`` or the one beside ``path``, if any).

    The header is checked first (:func:`npy_header`), then the rows
    (:func:`facebench.embedding_rows.row_norms`) and the sidecar (:func:`read_sidecar`): errors
    name the file."""
    shape, dtype, offset = npy_header(path)
    if len(shape) != 2 or dtype.kind != "f":
        raise DataError(f"{path}: expected float (N, d) embeddings, got {dtype} {shape}")
    try:
        emb = np.fromfile(path, dtype=dtype, count=math.prod(shape), offset=offset)
    except OSError as exc:
        raise DataError(f"{path}: cannot read embeddings ({exc.strerror})") from exc
    emb = emb.reshape(shape).astype(np.float32, copy=False)
    row_norms(emb, path)
    side_path = sidecar or sidecar_path(path)
    if sidecar is None and not os.path.exists(side_path):
        return emb, None
    return emb, read_sidecar(side_path, len(emb))
