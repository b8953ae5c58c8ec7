"""The one check of embedding rows and their L2 normalization, used by every consumer.

A usable embedding matrix is a non-empty ``(N, d)`` array of real numbers whose rows are finite
and not all zero. Norms are computed in float64 after dividing each row by its largest
magnitude, so rows near the float32 (or float64) limit neither overflow nor lose precision.
"""

from __future__ import annotations

import numpy as np

from facebench.errors import DataError

_CHUNK = 8192  # rows per float64 temporary (8192 x 512 x 8 bytes = 32 MiB)


def row_norms(embeddings: np.ndarray, source: str, first_row: int = 0) -> np.ndarray:
    """float64 L2 norm of each row; DataError naming ``source`` and the first bad row (counted
    from ``first_row``, for a chunk of a larger file)."""
    x = np.asarray(embeddings)
    if x.ndim != 2 or x.shape[1] < 1 or x.dtype.kind not in "fiu":
        raise DataError(
            f"{source}: embeddings must be a numeric (N, d) array, got {x.dtype} {x.shape}"
        )
    if len(x) == 0:
        raise DataError(f"{source}: no embeddings (0 rows)")
    norms = np.empty(len(x), dtype=np.float64)
    for start in range(0, len(x), _CHUNK):
        block = x[start : start + _CHUNK].astype(np.float64)
        finite = np.isfinite(block).all(axis=1)
        if not finite.all():
            row = first_row + start + int(np.argmin(finite))
            raise DataError(f"{source}: embedding row {row} is not finite (NaN or inf)")
        scale = np.abs(block).max(axis=1)
        if not scale.all():
            row = first_row + start + int(np.argmin(scale))
            raise DataError(f"{source}: embedding row {row} is all zeros")
        block /= scale[:, None]
        norms[start : start + len(block)] = scale * np.sqrt(np.einsum("ij,ij->i", block, block))
    return norms


def unit_rows(embeddings: np.ndarray, source: str, dtype=np.float32) -> np.ndarray:
    """The rows divided by their L2 norms (checked by :func:`row_norms`), as ``dtype``.

    Wider input is rounded to ``dtype`` first, so rows give the same unit vectors whether they
    come from memory (float64) or from a float32 file."""
    x = np.asarray(embeddings)
    if x.dtype.kind == "f" and x.dtype.itemsize > np.dtype(dtype).itemsize:
        with np.errstate(over="ignore"):  # rows too large for ``dtype`` become inf: refused below
            x = x.astype(dtype)
    norms = row_norms(x, source)
    out = np.empty(x.shape, dtype=dtype)
    for start in range(0, len(x), _CHUNK):
        block = x[start : start + _CHUNK].astype(np.float64)
        out[start : start + len(block)] = block / norms[start : start + len(block), None]
    return out
