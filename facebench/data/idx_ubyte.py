"""MNIST-format idx-ubyte files (MNIST, Fashion-MNIST, KMNIST...): reader, writer, split finder.

An idx file is a 4-byte magic ``0x00 0x00 <type> <ndim>``, ``ndim`` big-endian uint32 sizes and
the array in big-endian C order. Files may be gzipped; the reader detects that by content.
"""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np

from facebench.errors import DataError
from facebench.fileio import write_bytes

#: idx type code -> big-endian numpy dtype.
IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped when the content starts with the gzip magic."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read idx file ({exc.strerror})") from exc
    if data[:2] == _GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise DataError(f"{path}: corrupt gzip stream ({exc})") from exc
    return data


def parse_idx(data: bytes, source: str = "<bytes>") -> np.ndarray:
    """Parse the (uncompressed) bytes of an idx file into a native-endian array."""
    if len(data) < 4:
        raise DataError(f"{source}: {len(data)} bytes, too short for the 4-byte idx magic")
    zero, type_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0:
        raise DataError(f"{source}: offset 0: bad idx magic {data[:4].hex()} (must start 0000)")
    if type_code not in IDX_DTYPES:
        raise DataError(f"{source}: offset 2: unknown idx type code 0x{type_code:02x}")
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise DataError(f"{source}: truncated header: {ndim} sizes need {header_len} bytes")
    shape = struct.unpack(f">{ndim}I", data[4:header_len])
    dtype = IDX_DTYPES[type_code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    got = len(data) - header_len
    if got != expected:
        kind = "truncated" if got < expected else "trailing bytes"
        raise DataError(
            f"{source}: {kind}: shape {tuple(shape)} of {dtype.name} needs {expected} data "
            f"bytes after offset {header_len}, file has {got}"
        )
    array = np.frombuffer(data, dtype=dtype, offset=header_len).reshape(shape)
    return array.astype(dtype.newbyteorder("="))


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an idx file (plain or gzipped) into a native-endian numpy array."""
    path = Path(path)
    return parse_idx(_read_bytes(path), source=str(path))


def write_idx(path: str | os.PathLike, array: np.ndarray, compress: bool | None = None) -> None:
    """Write ``array`` as an idx file, gzipped when ``compress`` (default: the name ends .gz)."""
    path = Path(path)
    array = np.asarray(array)
    codes = {dtype.newbyteorder("="): code for code, dtype in IDX_DTYPES.items()}
    native = array.dtype.newbyteorder("=")
    if native not in codes:
        raise DataError(f"{path}: idx cannot store dtype {array.dtype}")
    if array.ndim > 255 or any(n >= 2**32 for n in array.shape):
        raise DataError(f"{path}: idx cannot store shape {array.shape}")
    header = struct.pack(f">HBB{array.ndim}I", 0, codes[native], array.ndim, *array.shape)
    body = np.ascontiguousarray(array, dtype=IDX_DTYPES[codes[native]]).tobytes()
    data = header + body
    if compress if compress is not None else path.suffix == ".gz":
        data = gzip.compress(data, mtime=0)
    write_bytes(path, data)


def find_idx_file(directory: str | os.PathLike, split: str, kind: str) -> Path:
    """The idx file of ``split`` (train, t10k) and ``kind`` (images, labels) in ``directory``.

    Accepts the usual names: ``train-images-idx3-ubyte``, ``train-images.idx3-ubyte``, each
    optionally ending ``.gz``.
    """
    directory = Path(directory)
    ndim = {"images": 3, "labels": 1}[kind]
    names = [f"{split}-{kind}{sep}idx{ndim}-ubyte{gz}" for sep in ("-", ".") for gz in ("", ".gz")]
    for name in names:
        if (directory / name).is_file():
            return directory / name
    raise DataError(f"{directory}: no {split} {kind} idx file (looked for {', '.join(names)})")


def load_idx_split(directory: str | os.PathLike, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Images ``(N, H, W)`` uint8 and labels ``(N,)`` int64 of one split of an idx set."""
    images_path = find_idx_file(directory, split, "images")
    labels_path = find_idx_file(directory, split, "labels")
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataError(f"{images_path}: expected uint8 (N, H, W) images, got {images.dtype}")
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise DataError(f"{labels_path}: expected 1-d integer labels, got shape {labels.shape}")
    if len(images) != len(labels):
        raise DataError(
            f"{labels_path}: {len(labels)} labels for {len(images)} images in {images_path}"
        )
    return images, labels.astype(np.int64)
