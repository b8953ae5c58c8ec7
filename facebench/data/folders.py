"""Image folders ``root/<identity>/<image>``: a torch Dataset and conversion to and from packs."""

from __future__ import annotations

import os

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from facebench.data.collate import RowBatch, read_batch
from facebench.data.images import decode_image, hflip, read_bytes, read_image
from facebench.data.packs import FacePack, write_face_pack
from facebench.data.skipping import BadItems
from facebench.errors import DataError
from facebench.fileio import atomic_dir, check_file_name, check_not_temporary

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
#: written beside a pack made from a folder: one identity folder name per line, in label order
CLASS_NAMES_FILE = "classes.txt"


def list_image_folder(root: str) -> tuple[list[str], list[tuple[str, int]]]:
    """Class names (sorted sub-folders) and ``(path, label)`` of every image, in sorted order;
    a folder name that is no safe identity name (see :func:`check_file_name`) is an error."""
    if not os.path.isdir(root):
        raise DataError(f"{root}: image folder does not exist")
    check_not_temporary(root)
    classes = sorted(
        check_file_name(e.name, root)
        for e in os.scandir(root)
        if e.is_dir() and not e.name.startswith(".")
    )
    samples = []
    for label, name in enumerate(classes):
        directory = os.path.join(root, name)
        for file in sorted(os.listdir(directory)):
            if file.lower().endswith(IMAGE_EXTENSIONS):
                samples.append((os.path.join(directory, file), label))
    if not samples:
        raise DataError(f"{root}: no images in <identity>/<image> sub-folders")
    return classes, samples


class ImageFolderDataset(Dataset):
    """Images of ``root/<identity>/<image>`` as ``(uint8 RGB (H, W, 3), label)``, like
    :class:`facebench.data.packs.PackDataset`."""

    def __init__(self, root: str, random_flip: bool = False):
        self.root = str(root)
        self.classes, self.samples = list_image_folder(self.root)
        self.random_flip = random_flip

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        path, label = self.samples[index]
        rgb = read_image(path)
        if self.random_flip and torch.rand(()) < 0.5:
            rgb = hflip(rgb)
        return rgb, label

    def __getitems__(self, indices: list[int]) -> RowBatch:
        """The DataLoader's batched read (see :func:`facebench.data.collate.read_batch`)."""
        return read_batch(self, indices)


def folder_to_pack(root: str, out_dir: str, progress: bool = True) -> tuple[int, int]:
    """Pack an image folder (files stored byte for byte); returns ``(images, classes)``.

    Every image is decoded once to check it and its size; all must have the same size.
    """
    classes, samples = list_image_folder(str(root))
    size = []

    def checked():
        for path, label in tqdm(samples, desc="from-folder", unit="img", disable=not progress):
            data = read_bytes(path)
            shape = decode_image(data, source=path).shape[:2]
            if size and shape != size[0]:
                raise DataError(
                    f"{path}: image is {shape[0]}x{shape[1]}, earlier images are "
                    f"{size[0][0]}x{size[0][1]}"
                )
            size.append(shape)
            yield label, data

    with atomic_dir(out_dir) as tmp_dir:
        counts = write_face_pack(tmp_dir, checked(), read_image(samples[0][0]).shape[:2])
        with open(os.path.join(tmp_dir, CLASS_NAMES_FILE), "w", encoding="utf-8") as f:
            f.writelines(f"{name}\n" for name in classes)
    return counts


def pack_to_folder(
    pack_path: str, out_dir: str, progress: bool = True, skip_bad: bool = False
) -> tuple[int, int, list[str]]:
    """Write every image of a pack to ``out_dir/<identity>/<key>.<ext>`` byte for byte.

    Each image is decoded first: a corrupt one is an error naming its key, or with ``skip_bad``
    is left out and listed. Identity folders take names from ``classes.txt`` beside the pack
    when present, else the label; keys are zero-padded so names sort in key order (from-folder
    then rebuilds the same pack). Returns ``(images written, identities, skipped)``.
    """
    pack = FacePack(pack_path)
    names = _class_names(os.path.dirname(pack.rec_path))
    labels = set()
    bad = BadItems(skip_bad)
    width = len(str(int(pack.image_keys.max()))) if len(pack.image_keys) else 1
    with atomic_dir(out_dir) as tmp_dir:
        for key in tqdm(pack.image_keys, desc="to-folder", unit="img", disable=not progress):
            read = bad.attempt(lambda key=int(key): pack.read_verified(key))
            if read is None:
                continue
            data, label = read
            name = names[label] if names and label < len(names) else f"{label:07d}"
            directory = os.path.join(tmp_dir, name)
            if label not in labels:
                os.makedirs(directory, exist_ok=True)
                labels.add(label)
            file_name = f"{int(key):0{width}d}{image_extension(data)}"
            with open(os.path.join(directory, file_name), "wb") as f:
                f.write(data)
        if not labels:
            raise DataError(f"{pack.rec_path}: every image is bad; nothing written")
    return len(pack.image_keys) - len(bad.items), len(labels), bad.items


def _class_names(directory: str) -> list[str] | None:
    """The identity names of ``classes.txt`` in ``directory`` (None when there is none), each a
    safe folder name and none twice; else DataError naming the file."""
    path = os.path.join(directory, CLASS_NAMES_FILE)
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8", newline="\n") as f:
            names = [check_file_name(line.rstrip("\n").removesuffix("\r"), path) for line in f]
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (byte {exc.start})") from exc
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror})") from exc
    seen = set()
    for line, name in enumerate(names, 1):
        if name in seen:
            raise DataError(f"{path}: line {line}: identity {name!r} is named twice")
        seen.add(name)
    return names


def image_extension(data: bytes) -> str:
    """File extension for encoded image bytes (JPEG, PNG, BMP, else .jpg)."""
    if data.startswith(b"\x89PNG"):
        return ".png"
    if data.startswith(b"BM"):
        return ".bmp"
    return ".jpg"
