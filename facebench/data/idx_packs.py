"""An MNIST-format idx set (MNIST, Fashion-MNIST, ...) as facebench packs and a verification bin.

Writes, under ``out``:
  closed/train, closed/test   packs of every class (train split, test split)
  closed/fit, closed/val      with ``val_per_class``: closed/train split into a part to fit and a
                              validation part (that many images per class) for tuning; with
                              ``fit_per_class`` the part to fit keeps at most that many per class
  open/train                  pack of the open-set training classes only (train split, labels 0..)
  open/heldout.bin            verification bin from the other classes' test images, LFW layout:
                              10 folds x (n genuine pairs, then n impostor pairs)
  open/p<k>/train, .../heldout.bin   the same for the k-th of ``open_partitions`` (its own
                              classes, pairs drawn with its own seed)
  split.json                  what was written: classes, label maps, counts, seed
Images are stored lossless (PNG) at their own size (28x28), grey replicated to 3 channels.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from facebench.data.bins import write_verification_bin
from facebench.data.idx_ubyte import load_idx_split
from facebench.data.images import encode_image
from facebench.data.packs import write_face_pack
from facebench.errors import DataError
from facebench.fileio import write_text

log = logging.getLogger(__name__)
NUM_FOLDS = 10


def parse_classes(text: str) -> list[int]:
    """'0-5' or '0,2,4' or '0-2,7' -> sorted distinct class ids."""
    classes: set[int] = set()
    try:
        for part in text.split(","):
            lo, _, hi = part.strip().partition("-")
            classes.update(range(int(lo), int(hi or lo) + 1))
    except ValueError as exc:
        raise DataError(
            f"--open-train-classes: cannot parse {text!r} (use e.g. 0-5 or 0,2,4)"
        ) from exc
    return sorted(classes)


def per_class_subset(labels: np.ndarray, limit: int | None, rng: np.random.Generator) -> np.ndarray:
    """Indices keeping at most ``limit`` random samples of each class, in file order."""
    if limit is None:
        return np.arange(len(labels))
    keep = [
        rng.choice(idx, size=min(limit, len(idx)), replace=False)
        for idx in (np.flatnonzero(labels == c) for c in np.unique(labels))
    ]
    return np.sort(np.concatenate(keep))


def grey_to_rgb(image: np.ndarray) -> np.ndarray:
    """uint8 ``(H, W)`` -> ``(H, W, 3)`` with the grey value in every channel."""
    return np.repeat(image[:, :, None], 3, axis=2)


def write_pack(out_dir: Path, images: np.ndarray, labels: np.ndarray) -> None:
    """Write a pack of ``images`` (N, H, W) with 0-based ``labels``, grouped by label."""
    order = np.argsort(labels, kind="stable")
    samples = ((int(labels[i]), encode_image(grey_to_rgb(images[i]), ".png")) for i in order)
    write_face_pack(out_dir, samples, image_size=tuple(images.shape[1:3]))


def draw_lfw_pairs(
    labels: np.ndarray, pairs_per_half: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of indices in the LFW layout and their issame flags.

    Each of the 10 folds holds ``pairs_per_half`` genuine pairs (a random class, two distinct
    images) and then as many impostor pairs (two distinct random classes, one image each).
    """
    by_class = [np.flatnonzero(labels == c) for c in np.unique(labels)]
    if len(by_class) < 2 or min(len(idx) for idx in by_class) < 2:
        raise DataError("held-out classes: need at least 2 classes with at least 2 images each")
    pairs, issame = [], []
    for _ in range(NUM_FOLDS):
        for same in (True, False):
            for _ in range(pairs_per_half):
                if same:
                    members = by_class[rng.integers(len(by_class))]
                    pairs.append(rng.choice(members, size=2, replace=False))
                else:
                    a, b = rng.choice(len(by_class), size=2, replace=False)
                    pairs.append([rng.choice(by_class[a]), rng.choice(by_class[b])])
                issame.append(same)
    return np.asarray(pairs, dtype=np.int64), np.asarray(issame, dtype=bool)


def convert_idx_set(
    src: str | os.PathLike,
    out: str | os.PathLike,
    open_train_classes: list[int] | None,
    train_per_class: int | None = None,
    test_per_class: int | None = None,
    pairs_per_half: int = 300,
    seed: int = 0,
    val_per_class: int | None = None,
    fit_per_class: int | None = None,
    open_partitions: Sequence[tuple[list[int], int]] = (),
) -> dict:
    """Write the closed-set packs, the open-set pack and bin under ``out``; return split.json.

    ``val_per_class``: also split the kept training images into closed/val (that many random
    images per class) and closed/fit (the rest, or ``fit_per_class`` random images per class of
    it), for tuning without the test split. ``open_partitions``: (training classes, seed) of
    more open-set splits, the k-th under open/p<k> with its pairs drawn from its seed (listed in
    split.json's ``open_partitions``); ``open_train_classes`` None writes no open/ split."""
    if fit_per_class is not None and val_per_class is None:
        raise DataError("--fit-per-class needs --val-per-class (it caps the part left to fit)")
    out = Path(out)
    rng = np.random.default_rng(seed)
    train_images, train_labels = load_idx_split(src, "train")
    test_images, test_labels = load_idx_split(src, "t10k")
    classes = sorted(set(np.unique(train_labels).tolist()) | set(np.unique(test_labels).tolist()))
    if classes != list(range(len(classes))):
        raise DataError(f"{src}: labels must be 0..K-1, found classes {classes}")
    splits = [] if open_train_classes is None else [open_train_classes]
    for chosen in [*splits, *(c for c, _ in open_partitions)]:
        _check_open_classes(chosen, classes, src)
    train_keep = per_class_subset(train_labels, train_per_class, rng)
    test_keep = per_class_subset(test_labels, test_per_class, rng)
    train_images, train_labels = train_images[train_keep], train_labels[train_keep]
    test_images, test_labels = test_images[test_keep], test_labels[test_keep]

    log.info("closed set: %d train / %d test images", len(train_labels), len(test_labels))
    write_pack(out / "closed" / "train", train_images, train_labels)
    write_pack(out / "closed" / "test", test_images, test_labels)
    counts = {}
    if val_per_class is not None:
        in_val = np.zeros(len(train_labels), bool)
        in_val[per_class_subset(train_labels, val_per_class, rng)] = True
        if any((train_labels[~in_val] == c).sum() == 0 for c in classes):
            raise DataError(f"--val-per-class {val_per_class}: leaves a class with no image to fit")
        fit = np.flatnonzero(~in_val)
        if fit_per_class is not None:
            fit = fit[per_class_subset(train_labels[fit], fit_per_class, rng)]
        write_pack(out / "closed" / "fit", train_images[fit], train_labels[fit])
        write_pack(out / "closed" / "val", train_images[in_val], train_labels[in_val])
        counts = {"closed_fit": len(fit), "closed_val": int(in_val.sum())}
        log.info("tuning split: %d fit / %d validation images", *counts.values())

    open_split = {}
    if open_train_classes is not None:
        open_split = _write_open_split(
            out / "open",
            train_images,
            train_labels,
            test_images,
            test_labels,
            classes,
            open_train_classes,
            pairs_per_half,
            rng,
        )
    partitions = [
        {
            "seed": part_seed,
            **_write_open_split(
                out / "open" / f"p{k}",
                train_images,
                train_labels,
                test_images,
                test_labels,
                classes,
                chosen,
                pairs_per_half,
                np.random.default_rng(part_seed),
            ),
        }
        for k, (chosen, part_seed) in enumerate(open_partitions)
    ]
    open_counts = open_split.pop("counts", {})
    split = {
        "source": str(Path(src).resolve()),
        "seed": seed,
        "image_size": list(train_images.shape[1:3]),
        "num_classes": len(classes),
        **open_split,
        "counts": {
            "closed_train": len(train_labels),
            "closed_test": len(test_labels),
            **open_counts,
            **counts,
        },
    }
    if partitions:
        split["open_partitions"] = partitions
    write_text(out / "split.json", json.dumps(split, indent=2))
    return split


def _check_open_classes(chosen: list[int], classes: list[int], src) -> None:
    """Open-set training classes must be classes of the set and leave >= 2 held out."""
    unknown = sorted(set(chosen) - set(classes))
    if unknown or not chosen or len(classes) - len(set(chosen)) < 2:
        raise DataError(
            f"--open-train-classes {chosen}: must be classes of {src} "
            f"(0..{len(classes) - 1}) leaving at least 2 held out"
        )


def _write_open_split(
    out: Path, train_images, train_labels, test_images, test_labels, classes, chosen, pairs, rng
) -> dict:
    """open/train (the ``chosen`` classes, relabelled 0..) and open/heldout.bin (``pairs``
    genuine and as many impostor pairs per fold of the other ``classes``' test images, drawn
    with ``rng``) under ``out``; return their split fields."""
    held_out = [c for c in classes if c not in chosen]
    relabel = {c: i for i, c in enumerate(chosen)}
    in_open = np.isin(train_labels, chosen)
    open_labels = np.asarray([relabel[c] for c in train_labels[in_open].tolist()], dtype=np.int64)
    log.info("open set: %d train images of classes %s", len(open_labels), chosen)
    write_pack(out / "train", train_images[in_open], open_labels)

    held = np.flatnonzero(np.isin(test_labels, held_out))
    drawn, issame = draw_lfw_pairs(test_labels[held], pairs, rng)
    bin_images = [encode_image(grey_to_rgb(test_images[held[i]]), ".png") for i in drawn.ravel()]
    write_verification_bin(out / "heldout.bin", bin_images, issame)
    return {
        "open_train_classes": list(chosen),
        "held_out_classes": held_out,
        "open_label_of_class": {str(c): i for c, i in relabel.items()},
        "counts": {
            "open_train": len(open_labels),
            "heldout_test_images": len(held),
            "heldout_pairs": len(issame),
        },
    }
