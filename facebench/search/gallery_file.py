"""The gallery file: header, identity sections and faiss index in one file, read and written.

Layout (format 2): magic, header length (uint64), JSON header (dimension, factory, row count,
lists file, the binary sections' dtypes, lengths and offsets), the sections (``codes``, then the
``names`` of string identities), each at a multiple of 64 bytes; the faiss index. Codes are
stored as int32 when they all fit, else int64. Format 1 (still read) holds the identities as one
JSON list in the header.
"""

from __future__ import annotations

import json
import os
import struct
from typing import NamedTuple

import numpy as np

from facebench.errors import DataError
from facebench.fileio import atomic_file

#: Format 2: identities as int64 codes in a binary section (memory-mapped when loaded).
_MAGIC = b"FBGALLERY\x02"
#: Format 1 (still read): identities as one JSON list in the header.
_MAGIC_V1 = b"FBGALLERY\x01"
_ALIGN = 64  # binary sections start at multiples of this many bytes


class Stored(NamedTuple):
    """What a gallery file holds."""

    dim: int
    factory: str
    lists: str | None  # the inverted-lists file of an on-disk IVF index
    codes: np.ndarray  # per row: its identity, or the position of its name in ``names``
    names: np.ndarray | None  # sorted distinct string identities
    index: object  # the faiss index, on the CPU


def as_identities(identities, count: int) -> np.ndarray:
    """Identities as an int64 or str array of length ``count``."""
    ids = np.asarray(identities)
    if ids.ndim != 1 or len(ids) != count:
        raise DataError(f"gallery: {count} embeddings but identities of shape {ids.shape}")
    if ids.dtype.kind in "iub":
        return ids.astype(np.int64)
    if ids.dtype.kind in "US":
        return ids.astype(str)
    if ids.dtype.kind == "f" and len(ids) and np.all(ids == np.round(ids)):
        return ids.astype(np.int64)
    raise DataError(f"gallery: identities must be integers or strings, got {ids.dtype}")


def lists_path_of(index_path: str) -> str:
    """The inverted-lists file of an on-disk gallery: ``INDEX.ivfdata``, absolute, beside the
    file a symbolic link ``index_path`` points to (where the index itself is written)."""
    return os.path.realpath(index_path) + ".ivfdata"


def write(path: str, stored: Stored) -> None:
    """Write ``stored`` to ``path`` (temporary name, then rename)."""
    import faiss

    arrays = {"codes": (stored.codes, _code_dtype(stored.codes))}
    if stored.names is not None:
        arrays["names"] = (stored.names, stored.names.dtype)
    sections, end = {}, 0
    for name, (array, dtype) in arrays.items():
        sections[name] = {"dtype": dtype.str, "count": len(array), "offset": end}
        end = _aligned(end + len(array) * dtype.itemsize)
    header = json.dumps(
        {
            "dim": stored.dim,
            "factory": stored.factory,
            "count": int(stored.index.ntotal),
            "lists": stored.lists,
            "sections": sections,
        }
    ).encode()
    with atomic_file(path) as f:
        f.write(_MAGIC + struct.pack("<Q", len(header)) + header)
        for array, dtype in arrays.values():
            f.seek(_aligned(f.tell()))
            for start in range(0, len(array), 1 << 20):  # bounded copies of a memory map
                f.write(np.ascontiguousarray(array[start : start + (1 << 20)], dtype).data)
        f.seek(_aligned(f.tell()))
        f.truncate()
        faiss.write_index(stored.index, faiss.PyCallbackIOWriter(f.write))


def read(path: str) -> Stored:
    """Read a file written by :func:`write` (or by format 1); the identities are memory-mapped.
    A corrupt or foreign file raises DataError."""
    try:
        with open(path, "rb") as f:
            return _read(f, str(path))
    except OSError as exc:
        raise DataError(f"{path}: cannot open gallery index ({exc.strerror})") from exc


def _read(f, path: str) -> Stored:
    import faiss

    magic = f.read(len(_MAGIC))
    if magic not in (_MAGIC, _MAGIC_V1):
        raise DataError(f"{path}: not a facebench gallery index (bad magic bytes)")
    try:
        (size,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(size))
        dim, factory, lists = int(header["dim"]), header["factory"], header.get("lists")
        if magic == _MAGIC:
            codes, names = _read_sections(f, path, header["sections"])
        else:  # format 1: an empty gallery's [] would read as floats
            ids = header["identities"]
            codes, names = _encode(as_identities(ids, len(ids)) if ids else np.zeros(0, np.int64))
    except (struct.error, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise DataError(f"{path}: corrupt gallery index (bad header)") from exc
    if lists is not None and not os.path.isfile(lists):
        raise DataError(
            f"{path}: its inverted lists file {lists} is missing (an on-disk "
            "gallery reads its lists from where it was built; rebuild it to move it)"
        )
    try:
        index = faiss.read_index(faiss.PyCallbackIOReader(f.read))
    except RuntimeError as exc:
        raise DataError(f"{path}: corrupt gallery index (faiss cannot read it back)") from exc
    if f.read(1):
        raise DataError(f"{path}: corrupt gallery index (bytes after the faiss index)")
    if index.d != dim or not (index.ntotal == header["count"] == len(codes)):
        raise DataError(
            f"{path}: corrupt gallery index (index holds {index.ntotal} x {index.d}, header "
            f"says {header['count']} x {dim} with {len(codes)} identities)"
        )
    return Stored(dim, factory, lists, codes, names, index)


def _encode(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Codes (and sorted names for string identities) of format 1's identity list."""
    if ids.dtype.kind == "i":
        return ids, None
    names = np.unique(ids)
    return np.searchsorted(names, ids).astype(np.int64), names


def _code_dtype(codes: np.ndarray) -> np.dtype:
    """int32 when every code fits (4 B per row on disk), else int64."""
    small = np.iinfo(np.int32)
    fits = not len(codes) or (small.min <= codes.min() and codes.max() <= small.max)
    return np.dtype("<i4" if fits else "<i8")


def _aligned(offset: int) -> int:
    return -(-offset // _ALIGN) * _ALIGN


def _read_sections(f, path: str, sections: dict) -> tuple[np.ndarray, np.ndarray | None]:
    """Map the identity sections of a format-2 file and leave ``f`` at the faiss index;
    sections that do not fit the file or names out of range raise DataError."""
    start = _aligned(f.tell())
    file_size = os.fstat(f.fileno()).st_size
    arrays, end = {}, 0
    for name in ("codes", "names") if "names" in sections else ("codes",):
        dtype, count = np.dtype(sections[name]["dtype"]), int(sections[name]["count"])
        offset = start + int(sections[name]["offset"])
        end = _aligned(offset + dtype.itemsize * count)
        if dtype.kind not in ("i" if name == "codes" else "U") or offset < start or end > file_size:
            raise DataError(f"{path}: corrupt gallery index (bad {name} section)")
        arrays[name] = np.memmap(f, dtype, "r", offset, (count,)) if count else np.zeros(0, dtype)
    codes, names = arrays["codes"], arrays.get("names")
    if names is not None and len(codes) and not 0 <= codes.min() <= codes.max() < len(names):
        raise DataError(f"{path}: corrupt gallery index (identity codes out of range)")
    f.seek(end)
    return codes, names
