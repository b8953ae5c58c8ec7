"""Image collections for ``facebench embed``: a pack, a verification bin, a folder or a file list.

Each source iterates uint8 RGB images in a fixed order and describes them for the sidecar
(ids, labels, paths); images of the wrong size raise a DataError naming the image.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator

import numpy as np

from facebench.data.images import read_image
from facebench.errors import ConfigError, DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


class ImageSource:
    """A sized iterable of images; ``expected_size`` (H, W), when set, is checked per image.

    :meth:`part` gives a copy that iterates a contiguous range of the rows only (one rank's
    shard of a distributed extraction); :meth:`sidecar` always describes the whole source."""

    kind = "images"

    def __init__(self, path: str):
        self.path = str(path)
        self.expected_size: tuple[int, int] | None = None
        self.rows: range | None = None  # None: every image

    def count(self) -> int:
        """Images in the whole source."""
        raise NotImplementedError

    def _items(self, rows: range) -> Iterator[tuple[str, np.ndarray]]:
        """``(name for errors, image)`` pairs of ``rows``, in order."""
        raise NotImplementedError

    def selected(self) -> range:
        """The rows this object iterates."""
        return range(self.count()) if self.rows is None else self.rows

    def part(self, start: int, stop: int) -> ImageSource:
        """A copy that iterates positions ``start:stop`` of :meth:`selected` only."""
        piece = copy.copy(self)
        piece.rows = self.selected()[start:stop]
        return piece

    def __len__(self) -> int:
        return len(self.selected())

    def __iter__(self) -> Iterator[np.ndarray]:
        for name, image in self._items(self.selected()):
            if self.expected_size is not None and image.shape[:2] != tuple(self.expected_size):
                raise DataError(
                    f"{name}: image is {image.shape[0]}x{image.shape[1]}, the model expects "
                    f"{self.expected_size[0]}x{self.expected_size[1]} (align or resize first)"
                )
            yield image

    def row_values(self) -> dict[str, list]:
        """Per-image values read while iterating (pack labels), for the rows iterated."""
        return {}

    def set_row_values(self, values: dict[str, list]) -> None:
        """Take the :meth:`row_values` of every row (gathered from the shards, in order)."""

    def sidecar(self) -> dict:
        """ids / labels / paths describing the rows, in order."""
        raise NotImplementedError


class PackSource(ImageSource):
    """Images of an InsightFace pack in key order; labels read as the images are."""

    kind = "pack"

    def __init__(self, path: str):
        from facebench.data.packs import FacePack

        super().__init__(path)
        self.pack = FacePack(path)
        self.labels: list[int] = []

    def count(self) -> int:
        return len(self.pack)

    def _items(self, rows):
        self.labels = []
        for index in rows:
            key = int(self.pack.image_keys[index])
            image, label = self.pack.read_sample(key)
            self.labels.append(int(label))
            yield f"{self.pack.rec_path}: key {key}", image

    def row_values(self) -> dict[str, list]:
        return {"labels": self.labels}

    def set_row_values(self, values: dict[str, list]) -> None:
        self.labels = list(values["labels"])

    def sidecar(self) -> dict:
        return {"ids": [int(k) for k in self.pack.image_keys], "labels": self.labels}


class BinSource(ImageSource):
    """The 2P images of a verification bin (pair k = rows 2k, 2k+1)."""

    kind = "bin"

    def __init__(self, path: str):
        from facebench.data.bins import read_verification_bin

        super().__init__(path)
        self.vbin = read_verification_bin(path)

    def count(self) -> int:
        return len(self.vbin.images)

    def _items(self, rows):
        for i in rows:
            yield f"{self.path}: image {i}", self.vbin.decode_one(i)

    def sidecar(self) -> dict:
        return {"ids": list(range(self.count())), "pairs": len(self.vbin.issame)}


class FileListSource(ImageSource):
    """Image files; identities (optional) per file, labels = their index among sorted names."""

    kind = "files"

    def __init__(self, path: str, files: list[str], identities: list[str] | None = None):
        super().__init__(path)
        if not files:
            raise DataError(f"{path}: no images found")
        self.files = files
        self.identities = identities

    def count(self) -> int:
        return len(self.files)

    def _items(self, rows):
        for i in rows:
            yield self.files[i], read_image(self.files[i])

    def sidecar(self) -> dict:
        out: dict = {"ids": list(range(len(self.files))), "paths": self.files}
        if self.identities is not None:
            names = sorted(set(self.identities))
            index = {name: i for i, name in enumerate(names)}
            out["identities"] = self.identities
            out["labels"] = [index[name] for name in self.identities]
        return out


def list_images(root: str) -> list[str]:
    """Paths of every image file under ``root``, sorted."""
    if not os.path.isdir(root):
        raise DataError(f"{root}: not a directory")
    return sorted(
        os.path.join(d, f)
        for d, _, names in os.walk(root)
        for f in names
        if f.lower().endswith(IMAGE_EXTENSIONS)
    )


def folder_source(root: str) -> FileListSource:
    """Every image under ``root`` (sorted); identity = first folder below ``root``, if any."""
    files = list_images(root)
    parts = [os.path.relpath(f, root).split(os.sep) for f in files]
    nested = bool(parts) and all(len(p) > 1 for p in parts)
    source = FileListSource(root, files, [p[0] for p in parts] if nested else None)
    source.kind = "folder"
    return source


def list_source(list_file: str) -> FileListSource:
    """A text file, one image per line: ``path`` or ``path<whitespace>identity``; ``#`` comments.

    Relative paths are relative to the list file's directory.
    """
    try:
        with open(list_file) as f:
            lines = f.read().splitlines()
    except OSError as exc:
        raise DataError(f"{list_file}: cannot read image list ({exc.strerror})") from exc
    base = os.path.dirname(os.path.abspath(list_file))
    files, identities = [], []
    for number, line in enumerate(lines, 1):
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        if len(fields) > 2:
            raise DataError(f"{list_file}: line {number}: expected 'path [identity]', got {line!r}")
        files.append(os.path.join(base, fields[0]))
        identities.append(fields[1] if len(fields) == 2 else None)
    given = [i is not None for i in identities]
    if any(given) and not all(given):
        raise DataError(f"{list_file}: give an identity on every line or on none")
    return FileListSource(list_file, files, identities if files and all(given) else None)


def open_source(pack=None, bin_path=None, folder=None, list_file=None) -> ImageSource:
    """The one source given by keyword."""
    given = {
        k: v for k, v in dict(pack=pack, bin=bin_path, folder=folder, list=list_file).items() if v
    }
    if len(given) != 1:
        raise ConfigError(
            f"give exactly one image source (pack, bin, folder, list), got {len(given)}"
        )
    kind, path = next(iter(given.items()))
    if kind == "pack":
        return PackSource(path)
    if kind == "bin":
        return BinSource(path)
    if kind == "folder":
        return folder_source(path)
    return list_source(path)
