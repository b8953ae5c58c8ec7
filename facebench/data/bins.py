"""Verification bins (lfw.bin, cfp_fp.bin, ...): a pickle of ``(bins, issame_list)``.

``bins`` holds 2P images (pair k is ``bins[2k], bins[2k+1]``), each encoded bytes or a uint8
array; ``issame_list`` holds P bools. Pickles run code on load, so these files go through a
restricted unpickler that builds only bytes, lists, tuples, bools and plain numpy arrays.
"""

from __future__ import annotations

import functools
import importlib
import io
import math
import os
import pickle
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from tqdm import tqdm

from facebench.data.folders import image_extension
from facebench.data.images import decode_image, encode_image, read_image
from facebench.data.skipping import BadItems
from facebench.errors import DataError
from facebench.fileio import atomic_dir, atomic_file, check_not_temporary

# (module, name) pairs a bin may reference: what numpy 1.x / 2.x and Python 2 / 3 pickles of
# bytes, bool arrays and uint8 arrays need, and nothing else.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
    ("builtins", "bytearray"),
    ("__builtin__", "bytearray"),
    ("builtins", "bytes"),  # protocol 2 pickles b"" as a call of bytes() without arguments
    ("__builtin__", "bytes"),
}


def _empty_bytes(*args) -> bytes:
    """``bytes()`` for pickles; refuses arguments (``bytes(10**12)`` would allocate)."""
    if args:
        raise pickle.UnpicklingError("bytes() called with arguments")
    return b""


class _RestrictedUnpickler(pickle._Unpickler):
    """Resolves only the globals in ``_ALLOWED_GLOBALS``; anything else is refused unrun. The
    calls that could build more than the pickle holds (``bytearray(n)``, ``_reconstruct`` of a
    large empty array, a chain of expanding codecs) are bounded by the file's ``size``.

    The pure-Python unpickler: it reads what an opcode announces from the file (never more
    than the file holds) and keeps its memo in a dict, where the C one allocates the announced
    length or memo index first (``BINBYTES8`` of 2^40 bytes in a 14-byte file)."""

    def __init__(self, file, path: str, size: int):
        super().__init__(file, encoding="bytes")
        self.path = path
        self.size = size

    def _load_bytearray8(self) -> None:
        """``BYTEARRAY8``, its length bounded first (``pickle._Unpickler`` allocates it)."""
        (length,) = struct.unpack("<Q", self.read(8))
        self._bounded("bytearray", length)
        data = self.read(length)
        if len(data) != length:
            raise pickle.UnpicklingError(f"bytearray of {length} bytes cut short")
        self.append(bytearray(data))

    dispatch: ClassVar[dict] = {
        **pickle._Unpickler.dispatch,
        pickle.BYTEARRAY8[0]: _load_bytearray8,
    }

    def persistent_load(self, pid):
        raise DataError(f"{self.path}: holds a persistent id, which no bin pickle has")

    def _bounded(self, what: str, count: int) -> None:
        if count > self.size:
            raise DataError(
                f"{self.path}: {what} of {count:,} bytes, more than the {self.size:,}-byte file "
                "holds (not a bin)"
            )

    def _bytearray(self, *args) -> bytearray:
        if args and isinstance(args[0], int):
            self._bounded("bytearray", args[0])
        return bytearray(*args)

    def _encode(self, text, encoding: str = "utf-8") -> bytes:
        if encoding not in ("latin1", "latin-1"):  # what Python 3 pickles of bytes use
            raise DataError(f"{self.path}: refusing to encode with {encoding!r} (not a bin)")
        return text.encode(encoding)

    def _reconstruct(self, numpy_reconstruct, subtype, shape, dtype):
        if not isinstance(shape, tuple) or not all(isinstance(n, int) for n in shape):
            raise DataError(f"{self.path}: array shape {shape!r} is not a tuple of integers")
        self._bounded("an array", math.prod(shape))
        return numpy_reconstruct(subtype, shape, dtype)

    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise DataError(f"{self.path}: refusing to unpickle {module}.{name} (not a bin)")
        if module.startswith("numpy.core.") and hasattr(np, "_core"):
            module = "numpy._core." + module[len("numpy.core.") :]
        elif module.startswith("numpy._core.") and not hasattr(np, "_core"):
            module = "numpy.core." + module[len("numpy._core.") :]
        elif module == "__builtin__":
            module = "builtins"
        found = getattr(importlib.import_module(module), name)
        if name == "_reconstruct":
            return functools.partial(self._reconstruct, found)
        own = {"bytes": _empty_bytes, "bytearray": self._bytearray, "encode": self._encode}
        return own.get(name, found)


@dataclass
class VerificationBin:
    """The pairs of a bin: ``images`` (2P bytes or uint8 arrays) and ``issame`` (P bools)."""

    images: list
    issame: np.ndarray
    source: str = "<bin>"

    def __len__(self) -> int:
        return len(self.issame)

    def decode_one(self, index: int) -> np.ndarray:
        """uint8 RGB ``(H, W, 3)`` of image ``index``."""
        return decode_bin_image(self.images[index], f"{self.source}: image {index}")

    def decode(self, progress: bool = False) -> np.ndarray:
        """All images as uint8 RGB ``(2P, H, W, 3)``; every image must have the same size."""
        first = self.decode_one(0) if self.images else np.zeros((0, 0, 3), np.uint8)
        out = np.empty((len(self.images), *first.shape), dtype=np.uint8)
        items = range(len(self.images))
        for i in tqdm(items, desc="decode bin", disable=not progress, unit="img"):
            rgb = first if i == 0 else self.decode_one(i)
            if rgb.shape != first.shape:
                raise DataError(
                    f"{self.source}: image {i} is {rgb.shape[0]}x{rgb.shape[1]}, image 0 is "
                    f"{first.shape[0]}x{first.shape[1]}"
                )
            out[i] = rgb
        return out


def decode_bin_image(item, source: str) -> np.ndarray:
    """A bin entry to RGB: encoded bytes, a 1-D uint8 buffer of them, or an (H, W, 3) RGB array."""
    if isinstance(item, (bytes, bytearray)):
        return decode_image(bytes(item), source)
    if item.ndim == 1:
        return decode_image(item.tobytes(), source)
    if item.size == 0:
        raise DataError(f"{source}: empty image array of shape {item.shape}")
    return np.ascontiguousarray(item)


def _check_bin(obj, path: str) -> VerificationBin:
    """Validate the unpickled object's structure and pair counts."""
    if not isinstance(obj, (tuple, list)) or len(obj) != 2:
        raise DataError(f"{path}: expected a pickled (bins, issame_list) pair")
    images, issame = obj
    if isinstance(images, np.ndarray) and images.dtype == np.uint8 and images.ndim == 4:
        images = list(images)
    if not isinstance(images, (list, tuple)):
        raise DataError(f"{path}: bins is a {type(images).__name__}, expected a list of images")
    for i, item in enumerate(images):
        ok = isinstance(item, (bytes, bytearray)) or (
            isinstance(item, np.ndarray)
            and item.dtype == np.uint8
            and (item.ndim == 1 or (item.ndim == 3 and item.shape[2] == 3))
        )
        if not ok:
            raise DataError(f"{path}: image {i} is {type(item).__name__}, not bytes or uint8")
    try:
        flags = np.asarray(issame)
        if flags.ndim != 1 or flags.dtype.kind not in "biu" or not np.isin(flags, (0, 1)).all():
            raise ValueError
    except (ValueError, TypeError):
        raise DataError(f"{path}: issame_list is not a list of bools") from None
    if len(images) % 2:
        raise DataError(f"{path}: odd number of images ({len(images)}); pairs need 2 per pair")
    if len(flags) != len(images) // 2:
        raise DataError(
            f"{path}: issame_list has {len(flags)} entries but bins hold {len(images) // 2} pairs"
        )
    return VerificationBin(list(images), flags.astype(bool), source=path)


def read_verification_bin(path: str) -> VerificationBin:
    """Load a bin through the restricted unpickler (old Python 2 bins included)."""
    path = str(path)
    check_not_temporary(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise DataError(f"{path}: cannot read bin ({exc.strerror})") from exc
    try:
        obj = _RestrictedUnpickler(io.BytesIO(data), path, len(data)).load()
    except DataError:
        raise
    except Exception as exc:
        reason = " ".join(str(exc).split())  # some pickle errors span lines
        raise DataError(
            f"{path}: not a readable bin pickle ({type(exc).__name__}: {reason})"
        ) from exc
    return _check_bin(obj, path)


def write_verification_bin(path: str, images: Sequence, issame: Sequence[bool]) -> None:
    """Write ``(images, issame)`` as a bin (atomically); images are bytes or uint8 arrays."""
    path = str(path)
    images = [bytes(x) if isinstance(x, (bytes, bytearray)) else np.asarray(x) for x in images]
    checked = _check_bin((images, list(issame)), path)
    payload = (checked.images, [bool(x) for x in checked.issame])
    with atomic_file(path) as f:
        pickle.dump(payload, f, protocol=4)


def _extension(item) -> str:
    """File extension for a bin entry written to a folder: its own format, PNG for raw arrays."""
    if isinstance(item, np.ndarray) and item.ndim == 3:
        return ".png"
    return image_extension(bytes(item) if isinstance(item, (bytes, bytearray)) else item.tobytes())


def bin_to_folder(
    path: str, out_dir: str, progress: bool = True, skip_bad: bool = False
) -> tuple[int, list[str]]:
    """Write a bin as ``out_dir/NNNNN_{0,1}.<ext>`` + ``issame.txt``; returns the pair count
    and the skipped pairs.

    Encoded images are written byte for byte; raw arrays become lossless PNG. Each image is
    decoded first: a bad one is an error naming it, or with ``skip_bad`` its pair is left out
    (the kept pairs are numbered consecutively) and listed.
    """
    vbin = read_verification_bin(path)
    width = max(5, len(str(len(vbin))))
    bad = BadItems(skip_bad)
    kept = []
    with atomic_dir(out_dir) as tmp_dir:
        for k in tqdm(range(len(vbin)), desc="bin to folder", disable=not progress):
            if bad.attempt(lambda k=k: [vbin.decode_one(i) for i in (2 * k, 2 * k + 1)]) is None:
                continue
            for side in (0, 1):
                item = vbin.images[2 * k + side]
                name = f"{len(kept):0{width}d}_{side}{_extension(item)}"
                if isinstance(item, np.ndarray) and item.ndim == 3:
                    data = encode_image(item, ".png")
                else:
                    data = bytes(item) if isinstance(item, (bytes, bytearray)) else item.tobytes()
                with open(os.path.join(tmp_dir, name), "wb") as f:
                    f.write(data)
            kept.append(bool(vbin.issame[k]))
        if not kept:
            raise DataError(f"{path}: every pair has a bad image; nothing written")
        with open(os.path.join(tmp_dir, "issame.txt"), "w") as f:
            f.writelines(f"{int(x)}\n" for x in kept)
    return len(kept), bad.items


def folder_to_bin(folder: str, path: str, progress: bool = True) -> int:
    """Inverse of :func:`bin_to_folder`: pair images + ``issame.txt`` -> bin; returns pairs."""
    listing = os.path.join(folder, "issame.txt")
    try:
        with open(listing) as f:
            lines = [line.strip() for line in f if line.strip()]
    except OSError as exc:
        raise DataError(f"{listing}: cannot read ({exc.strerror})") from exc
    bad = [i for i, line in enumerate(lines, 1) if line not in ("0", "1")]
    if bad:
        raise DataError(f"{listing}: line {bad[0]}: expected 0 or 1")
    files = {os.path.splitext(n)[0]: n for n in os.listdir(folder) if n != "issame.txt"}
    width = max(5, len(str(len(lines))))
    images = []
    for k in tqdm(range(len(lines)), desc="folder to bin", disable=not progress):
        for side in (0, 1):
            stem = f"{k:0{width}d}_{side}"
            if stem not in files:
                raise DataError(f"{folder}: pair {k} has no image {stem}.*")
            file_path = os.path.join(folder, files[stem])
            read_image(file_path)
            with open(file_path, "rb") as f:
                images.append(f.read())
    write_verification_bin(path, images, [line == "1" for line in lines])
    return len(lines)


def describe_bin(path: str, samples: int = 3) -> list[str]:
    """Human-readable summary lines of a bin: pairs, genuine/impostor, folds, sample decodes."""
    vbin = read_verification_bin(path)
    genuine = int(vbin.issame.sum())
    kinds = {
        "bytes" if isinstance(x, (bytes, bytearray)) else f"array{x.shape}"
        for x in vbin.images[:50]
    }
    lines = [
        f"bin: {path}",
        f"pairs: {len(vbin):,} ({genuine:,} genuine, {len(vbin) - genuine:,} impostor)",
        f"images: {len(vbin.images):,} stored as {', '.join(sorted(kinds))}",
    ]
    step = max(1, len(vbin.images) // max(samples, 1))
    for i in range(0, len(vbin.images), step)[:samples]:
        rgb = vbin.decode_one(i)
        lines.append(f"sample: image {i} (pair {i // 2}): {rgb.shape[0]}x{rgb.shape[1]} RGB")
    return lines
