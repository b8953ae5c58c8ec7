"""Embedding files read as one gallery without loading them: checked up front, then streamed in
row chunks through short-lived memory maps (resident memory stays at one chunk per file)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from facebench.embed.io import npy_header, read_sidecar, sidecar_path
from facebench.embedding_rows import row_norms
from facebench.errors import DataError

#: Rows read at once when streaming a shard.
CHUNK_ROWS = 65536


@dataclass
class Shard:
    """One ``(rows, dim)`` float embedding file: where its rows start, their dtype, identities."""

    path: str
    rows: int
    dim: int
    dtype: np.dtype
    offset: int  # bytes before the first row
    sidecar: str | None  # its sidecar JSON, if any (read on demand: 1M identities are large)

    def meta(self) -> dict | None:
        """The sidecar's contents (None without one)."""
        return None if self.sidecar is None else read_sidecar(self.sidecar, self.rows)

    def chunks(self, rows: int = CHUNK_ROWS) -> Iterator[tuple[int, np.ndarray]]:
        """(first row, float32 copy of the next ``rows`` rows), mapping one chunk at a time."""
        for start in range(0, self.rows, rows):
            n = min(rows, self.rows - start)
            offset = self.offset + start * self.dim * self.dtype.itemsize
            view = np.memmap(self.path, self.dtype, "r", offset, (n, self.dim))
            chunk = np.array(view, dtype=np.float32)
            del view
            row_norms(chunk, self.path, start)
            yield start, chunk


def _header(path: str) -> tuple[tuple, np.dtype, int]:
    """(shape, dtype, data offset) of a float ``(N, d)`` ``.npy`` (:func:`npy_header`)."""
    shape, dtype, offset = npy_header(path)
    if len(shape) != 2 or dtype.kind != "f":
        raise DataError(f"{path}: expected float (N, d) embeddings, got {dtype} {shape}")
    return shape, dtype, offset


def open_shards(paths: list[str], sidecar: str | None = None) -> list[Shard]:
    """Check every file before any work: present, readable, one dimension and one dtype, sidecar
    row counts; ``sidecar`` overrides the one beside the file (a single file only)."""
    if sidecar is not None and len(paths) != 1:
        raise DataError("--sidecar names the sidecar of one embedding file, not of several")
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise DataError(f"{missing[0]}: no such embedding file")
    shards = []
    for path in paths:
        (rows, dim), dtype, offset = _header(path)
        if not rows:
            raise DataError(f"{path}: no embeddings (0 rows)")
        if shards and dim != shards[0].dim:
            raise DataError(
                f"{path}: {dim}-d embeddings, {shards[0].path} holds {shards[0].dim}-d ones "
                "(all shards must come from one model)"
            )
        if shards and dtype != shards[0].dtype:
            raise DataError(
                f"{path}: {dtype} embeddings, {shards[0].path} holds {shards[0].dtype} "
                "(all shards must be written alike)"
            )
        side = sidecar or sidecar_path(path)
        side = side if sidecar or os.path.exists(side) else None
        if side is not None:
            read_sidecar(side, rows)
        shards.append(Shard(str(path), int(rows), int(dim), dtype, offset, side))
    return shards


def sample_rows(shards: list[Shard], count: int, seed: int = 0) -> np.ndarray:
    """float32 ``(count, dim)``: rows drawn uniformly without replacement over all shards
    (all rows when ``count`` covers them), read by streaming each shard once."""
    total = sum(s.rows for s in shards)
    count = min(int(count), total)
    picks = np.sort(np.random.default_rng(seed).choice(total, count, replace=False))
    out = np.empty((count, shards[0].dim), dtype=np.float32)
    first, filled = 0, 0
    for shard in shards:
        for start, chunk in shard.chunks():
            lo, hi = first + start, first + start + len(chunk)
            mine = picks[np.searchsorted(picks, lo) : np.searchsorted(picks, hi)]
            out[filled : filled + len(mine)] = chunk[mine - lo]
            filled += len(mine)
        first += shard.rows
    return out
