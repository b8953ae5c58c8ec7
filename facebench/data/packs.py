"""InsightFace face packs: the meta record, identity ranges, the property file, a torch Dataset.

A pack written by InsightFace keeps images at keys ``1..a-1``, one identity record per class at
keys ``a..b-1`` (labels ``[start_key, end_key)``), and the meta record (key 0, labels ``[a, b]``)
near the end of the file. Packs made by plain im2rec have no meta record: every key is an image.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from itertools import groupby

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from facebench.data.collate import RowBatch, batch_tensor
from facebench.data.images import JPEG_END, decode_image, hflip
from facebench.data.recordio import IndexedRecordReader, IndexedRecordWriter, IRHeader, pack_record
from facebench.errors import DataError
from facebench.fileio import check_not_temporary, read_json, stale_temporaries, write_text

#: The largest image side a property file may state (the JPEG limit).
MAX_IMAGE_SIDE = 65535


def read_property(path: str) -> tuple[int, int, int]:
    """``(num_classes, H, W)`` from a property file (one line ``num_classes,H,W``)."""
    try:
        with open(path, "rb") as f:
            text = f.read(4096).decode("ascii").strip()
    except OSError as exc:
        raise DataError(f"{path}: cannot read property file ({exc.strerror})") from exc
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a property file (not ASCII text 'num_classes,H,W')") from None
    try:
        num_classes, height, width = (int(x) for x in text.split(","))
    except ValueError:
        raise DataError(f"{path}: expected 'num_classes,H,W', got {text[:60]!r}") from None
    if min(num_classes, height, width) < 1 or max(height, width) > MAX_IMAGE_SIDE:
        raise DataError(
            f"{path}: impossible values {text[:60]!r} (classes, H and W must be positive, "
            f"H and W at most {MAX_IMAGE_SIDE})"
        )
    return num_classes, height, width


def write_property(path: str, num_classes: int, height: int, width: int) -> None:
    """Write a property file atomically."""
    write_text(path, f"{num_classes},{height},{width}\n")


def _pack_paths(path: str) -> tuple[str, str, str | None]:
    """``(rec, idx, property or None)`` for a pack directory or a ``.rec`` path (never one in
    a temporary folder: every reader opens packs through here)."""
    path = str(path)
    check_not_temporary(path)
    if os.path.isdir(path):
        rec = os.path.join(path, "train.rec")
        if not os.path.exists(rec):
            raise DataError(f"{path}: no train.rec in this directory")
    elif path.endswith(".rec"):
        rec = path
    else:
        raise DataError(f"{path}: not a pack directory or a .rec file")
    prop = os.path.join(os.path.dirname(rec), "property")
    return rec, os.path.splitext(rec)[0] + ".idx", prop if os.path.exists(prop) else None


class FacePack:
    """An InsightFace pack (directory with train.rec/train.idx/property, or a ``.rec`` path)."""

    def __init__(self, path: str):
        self.path = str(path)
        rec, idx, self.property_path = _pack_paths(self.path)
        self.reader = IndexedRecordReader(rec, idx)
        self.rec_path = rec
        self.property = read_property(self.property_path) if self.property_path else None
        self.meta = None
        if 0 in self.reader:
            header, image = self.reader.read_record(0)
            if header.flag > 0 and not image:
                self.meta = self._check_meta(header)
        self._identities = None
        #: ``[start, end)`` image keys per class as lists (None: plain pack), for the label check
        self._class_keys = None
        if self.meta is not None:
            self.image_keys = np.arange(1, self.meta[0], dtype=np.int64)
            self._class_keys = (self.identities[:, 0].tolist(), self.identities[:, 1].tolist())
        else:
            self.image_keys = np.sort(self.reader.keys)
        self._check_counts()
        #: labels must lie below this (property or identity records; None: not known)
        self.label_limit = self.property[0] if self.property else None
        if self.meta is not None:
            self.label_limit = self.meta[1] - self.meta[0]

    def _check_counts(self) -> None:
        """The pack holds images, every image key is indexed, the property agrees with them."""
        if not len(self.image_keys):
            raise DataError(f"{self.rec_path}: the pack holds no images")
        if self.property is None:
            return
        classes = self.property[0]
        if self.meta is not None and classes != self.meta[1] - self.meta[0]:
            raise DataError(
                f"{self.property_path}: says {classes:,} classes, the pack has "
                f"{self.meta[1] - self.meta[0]:,} identity records"
            )
        if self.meta is None and classes > len(self.image_keys):
            raise DataError(
                f"{self.property_path}: says {classes:,} classes, the pack holds only "
                f"{len(self.image_keys):,} images"
            )

    def _check_meta(self, header: IRHeader) -> tuple[int, int]:
        """Validate the meta record's ``[a, b]`` against the index, which must hold exactly the
        keys ``0..b-1`` (checked before anything of that size is allocated)."""
        where = f"{self.rec_path}: key 0: meta record"
        if header.flag < 2:
            raise DataError(f"{where} has {header.flag} label(s), not 2")
        first, end = (float(x) for x in header.label[:2])
        if not (first.is_integer() and end.is_integer() and 1 <= first <= end):
            raise DataError(f"{where} range [{first:g}, {end:g}) is invalid")
        first, end = int(first), int(end)
        keys = self.reader.keys
        if end > len(keys):
            raise DataError(
                f"{where} names {end:,} keys (images 1..{first - 1}, identity records "
                f"{first}..{end - 1}), {self.reader.idx_path} holds only {len(keys):,}"
            )
        missing = self.reader.missing(np.arange(end, dtype=np.int64))
        if missing is not None:
            raise DataError(
                f"{where} names keys 0..{end - 1}, but key {missing} is not in "
                f"{self.reader.idx_path}"
            )
        if len(keys) > end:
            extra = int(keys[(keys < 0) | (keys >= end)][0])
            raise DataError(
                f"{self.reader.idx_path}: key {extra} lies outside the keys 0..{end - 1} of the "
                "meta record (images and identity records)"
            )
        return first, end

    def __len__(self) -> int:
        return len(self.image_keys)

    @property
    def identities(self) -> np.ndarray | None:
        """``(K, 2)`` int64 ``[start_key, end_key)`` per class from the identity records; they
        must tile the images ``1..a-1`` in class order (empty ranges allowed)."""
        if self.meta is None:
            return None
        if self._identities is None:
            first, end = self.meta
            keys = np.arange(first, end, dtype=np.int64)
            ranges = self.reader.label_pairs(keys)
            for i in np.flatnonzero(np.isnan(ranges).any(axis=1)).tolist():
                header, _ = self.reader.read_record(first + i)
                if header.flag < 2:
                    raise DataError(
                        f"{self.rec_path}: key {first + i}: identity record lacks a range"
                    )
                ranges[i] = header.label[:2]
            start, stop = ranges[:, 0], ranges[:, 1]
            whole = (start == np.floor(start)) & (stop == np.floor(stop))  # NaN: False
            inside = whole & (start >= 1) & (start <= stop) & (stop <= first)
            nonempty = np.flatnonzero(start < stop)
            follows = np.ones(len(keys), bool)
            follows[nonempty] = start[nonempty] == np.append(1, stop[nonempty][:-1])
            bad = np.flatnonzero(~inside | ~follows)
            if bad.size:
                i = int(bad[0])
                problem = (
                    "lies outside" if not inside[i] else "does not follow the class before it in"
                )
                raise DataError(
                    f"{self.rec_path}: key {first + i}: identity range [{start[i]:g}, "
                    f"{stop[i]:g}) {problem} the images 1..{first - 1}"
                )
            covered = int(stop[nonempty[-1]]) if nonempty.size else 1
            if covered != first:
                raise DataError(
                    f"{self.rec_path}: identity records {first}..{end - 1} cover images "
                    f"1..{covered - 1}, not 1..{first - 1}"
                )
            self._identities = ranges.astype(np.int64)
        return self._identities

    @property
    def num_classes(self) -> int:
        """From the property file, else the identity records, else a scan of every label."""
        if self.property is not None:
            return self.property[0]
        if self.meta is not None:
            return self.meta[1] - self.meta[0]
        return int(max((self.label(k) for k in self.image_keys), default=-1)) + 1

    def label(self, key: int) -> int:
        """Class of image ``key``."""
        return self._record(key)[1]

    def read_sample(self, key: int) -> tuple[np.ndarray, int]:
        """``(uint8 RGB (H, W, 3), label)`` of image ``key``; its size must match the property."""
        image, label = self._record(key)
        return self._decode(key, image), label

    def read_verified(self, key: int) -> tuple[bytes, int]:
        """``(encoded image bytes, label)`` after checking that the bytes decode to an image of
        the pack's size."""
        image, label = self._record(key)
        self._decode(key, image)
        return image.tobytes(), label

    def _decode(self, key: int, image: np.ndarray) -> np.ndarray:
        rgb = decode_image(image, source=f"{self.rec_path}: key {key}")
        if self.property is not None and rgb.shape[:2] != self.property[1:]:
            raise DataError(
                f"{self.rec_path}: key {key}: image is {rgb.shape[0]}x{rgb.shape[1]}, "
                f"{self.property_path} says {self.property[1]}x{self.property[2]}"
            )
        return rgb

    def read_into(self, keys: list[int], images: np.ndarray) -> list[int]:
        """Decode images ``keys`` into the rows of ``images`` (uint8 ``(N, H, W, 3)``) and
        return their labels; an image of another size than the rows is a DataError.

        The usual record (see :meth:`IndexedRecordReader.simple_records`; a whole label below
        the class count; bytes ending in a JPEG end-of-image marker; an image of the rows' size)
        is decoded straight from the map. Every other goes through :meth:`read_sample`, which
        checks it fully, so both give the same pixels, labels and errors."""
        limit = self.label_limit if self.label_limit is not None else np.inf
        starts, stops = self._class_keys or (None, None)
        shape = images.shape[1:]
        labels = []
        records = self.reader.simple_records(keys, suffix=JPEG_END)
        for row, (key, label, image) in enumerate(records):
            rgb = None
            if (
                image is not None
                and label.is_integer()
                and 0 <= label < limit
                and (starts is None or starts[int(label)] <= key < stops[int(label)])
            ):
                rgb = cv2.imdecode(image, cv2.IMREAD_COLOR_RGB)
            if rgb is None or rgb.shape != shape:
                rgb, label = self.read_sample(key)
                if rgb.shape != shape:
                    raise DataError(
                        f"{self.rec_path}: key {key}: image is {rgb.shape[0]}x{rgb.shape[1]}, "
                        f"the first of its batch {shape[0]}x{shape[1]}"
                    )
            images[row] = rgb
            labels.append(int(label))
        return labels

    def read_image(self, key: int) -> np.ndarray:
        """uint8 RGB ``(H, W, 3)`` of image ``key``."""
        return self.read_sample(key)[0]

    def read_encoded(self, key: int) -> tuple[bytes, int]:
        """``(encoded image bytes, label)`` of image ``key`` without decoding (see
        :meth:`_record`)."""
        image, label = self._record(key)
        return image.tobytes(), label

    def _record(self, key: int) -> tuple[np.ndarray, int]:
        """``(encoded image bytes as a uint8 view into the pack, label)`` of image ``key``.

        The label is ``labels[0]`` if the header's ``flag > 0``, else the scalar; it must be a
        whole number below the class count (property or identity records) when that is known.
        """
        header, image = self.reader.record_view(key)
        raw = float(header.label[0] if header.flag > 0 else header.label)
        limit = self.label_limit if self.label_limit is not None else np.inf
        if not (raw.is_integer() and 0 <= raw < limit):
            classes = "" if self.label_limit is None else f" (0..{self.label_limit - 1})"
            raise DataError(f"{self.rec_path}: key {key}: label {raw:g} is not a class{classes}")
        label = int(raw)
        if self._class_keys is not None:
            starts, stops = self._class_keys
            if not starts[label] <= key < stops[label]:
                raise DataError(
                    f"{self.rec_path}: key {key}: its header says label {label}, the identity "
                    f"records say class {self._class_of(key)} (class {label} is keys "
                    f"[{starts[label]}, {stops[label]}))"
                )
        return image, label

    def _class_of(self, key: int) -> int:
        """The class whose identity range holds image ``key`` (they tile the images)."""
        ranges = self.identities
        return int(np.flatnonzero((ranges[:, 0] <= key) & (key < ranges[:, 1]))[0])


def write_face_pack(
    out_dir: str,
    samples: Iterable[tuple[int, bytes]],
    image_size: tuple[int, int],
    name: str = "train",
    property_file: bool = True,
) -> tuple[int, int]:
    """Write ``name.rec/.idx`` (+ ``property``) in InsightFace layout; returns (images, classes).

    ``samples`` yields ``(label, encoded_image)`` with each label's images contiguous. Classes are
    ``0..max(label)``; a class with no images gets an empty range.
    """
    rec = os.path.join(out_dir, f"{name}.rec")
    ranges: dict[int, tuple[int, int]] = {}
    key = 1
    with IndexedRecordWriter(rec) as writer:
        for label, group in groupby(samples, key=lambda sample: int(sample[0])):
            if label < 0:
                raise DataError(f"{rec}: negative label {label}")
            if label in ranges:
                raise DataError(f"{rec}: images of label {label} are not contiguous")
            start = key
            for _, image in group:
                writer.write(key, pack_record(IRHeader(0, float(label), key, 0), image))
                key += 1
            ranges[label] = (start, key)
        num_classes = max(ranges, default=-1) + 1
        first = key
        for label in range(num_classes):
            start, end = ranges.get(label, (key, key))
            writer.write(first + label, pack_record(IRHeader(2, np.array([start, end]), 0, 0)))
        writer.write(0, pack_record(IRHeader(2, np.array([first, first + num_classes]), 0, 0)))
    if property_file:
        write_property(os.path.join(out_dir, "property"), num_classes, *image_size)
    return first - 1, num_classes


class PackDataset(Dataset):
    """Images of a pack as ``(uint8 RGB (H, W, 3), label)``; optional random flip.

    The default collate stacks them into a uint8 ``(N, H, W, 3)`` batch (in shared memory when
    DataLoader workers read); :func:`facebench.data.model_input.model_input` turns a batch into
    model input on the device."""

    def __init__(self, path: str, random_flip: bool = False):
        self.pack = FacePack(path)
        self.random_flip = random_flip

    def __len__(self) -> int:
        return len(self.pack)

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        rgb, label = self.pack.read_sample(int(self.pack.image_keys[index]))
        if self.random_flip and torch.rand(()) < 0.5:
            rgb = hflip(rgb)
        return rgb, label

    def __getitems__(self, indices: list[int]) -> RowBatch:
        """The DataLoader's batched read: ``self[i]`` for each index, as one uint8
        ``(N, H, W, 3)`` batch (:func:`facebench.data.collate.batch_tensor`). The first image
        sets the size; the others are decoded straight into their rows
        (:meth:`FacePack.read_into`), then flipped as ``self[i]`` would."""
        keys = self.pack.image_keys[np.asarray(indices, dtype=np.int64)].tolist()
        first, label = self.pack.read_sample(keys[0])
        batch = batch_tensor((len(keys), *first.shape))
        images = batch.numpy()
        images[0] = first
        labels = [label, *self.pack.read_into(keys[1:], images[1:])]
        if self.random_flip:
            for row in range(len(keys)):
                if torch.rand(()) < 0.5:
                    images[row] = hflip(images[row])
        return RowBatch(batch, labels)


def check_pack_folder(directory: str) -> None:
    """DataError saying what a pack folder lacks: a temporary folder or leftover temporaries
    of an interrupted write, or a file its ``synth.json`` says was written."""
    directory = str(directory)
    if not os.path.isdir(directory):
        return
    check_not_temporary(directory)
    expected = []
    summary = os.path.join(directory, "synth.json")
    if os.path.exists(summary):
        written = read_json(summary)
        expected += ["train.rec", "train.idx", "property"]
        if written.get("test_images"):
            expected += ["test.rec", "test.idx"]
        expected += list(written.get("bins", {}))
    missing = [name for name in expected if not os.path.exists(os.path.join(directory, name))]
    leftovers = [os.path.basename(p) for p in stale_temporaries(directory)]
    problems = [f"missing {', '.join(missing)}"] if missing else []
    if leftovers:
        problems.append(f"temporaries of an interrupted write: {', '.join(leftovers)}")
    if problems:
        raise DataError(f"{directory}: incomplete pack folder ({'; '.join(problems)})")


def describe_pack(path: str, samples: int = 3, scan_limit: int = 100_000) -> list[str]:
    """Human-readable summary lines of a pack: layout, counts, property, sample decodes."""
    pack = FacePack(path)
    if os.path.isdir(path) and pack.property is None:
        raise DataError(f"{path}: no property file ('num_classes,H,W'), which a pack folder holds")
    reader = pack.reader
    lines = [f"pack: {pack.rec_path} ({reader.size:,} bytes, {len(reader):,} keys in index)"]
    if pack.meta is not None:
        first, end = pack.meta
        lines.append(
            f"layout: InsightFace (meta record key 0: images 1..{first - 1}, "
            f"identity records {first}..{end - 1})"
        )
        identities = f"{end - first:,} (identity records)"
    else:
        lines.append("layout: plain im2rec (no meta record; every key is an image)")
        if len(pack) <= scan_limit:
            labels = {pack.label(int(k)) for k in pack.image_keys}
            identities = f"{len(labels):,} (distinct labels)"
        else:
            identities = "unknown (no meta record; too many images to scan)"
    lines.append(f"images: {len(pack):,}")
    lines.append(f"identities: {identities}")
    if pack.property is not None:
        classes, height, width = pack.property
        lines.append(f"property: {classes:,} classes, {height}x{width}")
    else:
        lines.append("property: none")
    step = max(1, len(pack) // max(samples, 1))
    for key in pack.image_keys[::step][:samples]:
        rgb, label = pack.read_sample(int(key))
        mean = ", ".join(f"{m:.0f}" for m in rgb.reshape(-1, 3).mean(0))
        lines.append(
            f"sample: key {int(key)} label {label}: {rgb.shape[0]}x{rgb.shape[1]} RGB, "
            f"mean ({mean})"
        )
    return lines
