"""The study's data: an idx set checked, converted once into packs and a held-out-class bin.

Sizes left None scale with the set: the validation split takes 1/:data:`VAL_SHARE` of the
smallest class's training images and the tuning runs fit 1/:data:`FIT_SHARE` of it (166 and 333
of the 1,000 per class the default study keeps of Fashion-MNIST), so any MNIST-format set with
:data:`MIN_PER_CLASS` or more training images per class runs with no option."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from facebench.data.idx_packs import NUM_FOLDS, convert_idx_set
from facebench.data.idx_ubyte import load_idx_split
from facebench.errors import DataError
from facebench.fileio import atomic_dir, write_json

#: The open set is judged over random class partitions, one per table seed (seed i trains and
#: is verified on partition i): each trains on this share of the classes (rounded; 6 of 10) and
#: is verified on pairs of the others, both drawn with partition k's seed PARTITION_SEED + k.
OPEN_TRAIN_SHARE = 0.6
PARTITION_SEED = 2000
SIZE_KEYS = (
    "train_per_class",
    "val_per_class",
    "fit_per_class",
    "test_per_class",
    "pairs_per_half",
    "seeds",  # = the open-set partitions
)


MIN_PER_CLASS = 50
VAL_SHARE = 6
FIT_SHARE = 3


def scaled_sizes(size: dict, train_labels: np.ndarray) -> dict:
    """``size`` with ``val_per_class`` / ``fit_per_class`` left None set from the smallest
    class (after ``train_per_class``); a class below :data:`MIN_PER_CLASS` raises DataError."""
    smallest = int(np.bincount(train_labels).min())
    if size.get("train_per_class") is not None:
        smallest = min(smallest, size["train_per_class"])
    if smallest < MIN_PER_CLASS:
        raise DataError(
            f"a class has {smallest} training images; the study needs at least {MIN_PER_CLASS} "
            "per class (give a larger set or a larger --train-per-class)"
        )
    out = dict(size)
    if out["val_per_class"] is None:
        out["val_per_class"] = smallest // VAL_SHARE
    if out["fit_per_class"] is None:
        out["fit_per_class"] = smallest // FIT_SHARE
    return out


def open_partitions(num_classes: int, count: int) -> list[tuple[list[int], int]]:
    """``count`` distinct partitions as (sorted training classes, seed): partition k's classes
    are a random draw of round(:data:`OPEN_TRAIN_SHARE` × classes), at least 2 and leaving
    at least 2 held out, from seed PARTITION_SEED + k (drawn again while it repeats an earlier
    partition). More partitions than distinct class sets raise DataError."""
    train = min(max(2, round(OPEN_TRAIN_SHARE * num_classes)), num_classes - 2)
    if train < 2 or math.comb(num_classes, train) < count:
        raise DataError(
            f"{num_classes} classes: cannot draw {count} distinct open-set partitions of "
            f"{train} training classes with 2 or more held out (use fewer --seeds)"
        )
    out: list[tuple[list[int], int]] = []
    for k in range(count):
        rng = np.random.default_rng(PARTITION_SEED + k)
        while True:
            chosen = sorted(rng.choice(num_classes, train, replace=False).tolist())
            if all(chosen != c for c, _ in out):
                break
        out.append((chosen, PARTITION_SEED + k))
    return out


def impostor_pairs(size: dict) -> int:
    """The impostor pairs of each partition's bin, known before any run."""
    return size["pairs_per_half"] * NUM_FOLDS


def check_idx_set(idx_dir: str | Path) -> np.ndarray:
    """Read both splits; a missing or inconsistent file raises DataError naming it. Returns the
    training labels."""
    if not Path(idx_dir).is_dir():
        raise DataError(f"--idx {idx_dir}: no such directory (give the folder of the idx files)")
    load_idx_split(idx_dir, "t10k")
    return load_idx_split(idx_dir, "train")[1]


def prepare_data(idx_dir: str | Path, data_dir: Path, size: dict, seed: int = 0) -> dict:
    """Convert the idx set into ``data_dir`` unless done already; return its split.json: the
    closed set and one open-set split per table seed (:func:`open_partitions`, under
    open/p<k>). ``size`` must have its scaled sizes set (:func:`scaled_sizes`).

    The conversion is written to a temporary folder renamed when complete, so ``data_dir``
    exists only whole. A ``data_dir`` made for other sizes raises DataError (use another --out)."""
    wanted = {k: size[k] for k in SIZE_KEYS}
    stamp = data_dir / "study_size.json"
    if data_dir.exists():
        if not stamp.is_file() or json.loads(stamp.read_text()) != wanted:
            raise DataError(f"{data_dir}: holds data of other sizes ({stamp}); use a new --out")
        return json.loads((data_dir / "split.json").read_text())
    num_classes = int(check_idx_set(idx_dir).max()) + 1
    with atomic_dir(data_dir) as tmp:
        split = convert_idx_set(
            idx_dir,
            tmp,
            None,
            train_per_class=size["train_per_class"],
            test_per_class=size["test_per_class"],
            pairs_per_half=size["pairs_per_half"],
            seed=seed,
            val_per_class=size["val_per_class"],
            fit_per_class=size["fit_per_class"],
            open_partitions=open_partitions(num_classes, size["seeds"]),
        )
        write_json(Path(tmp) / "study_size.json", wanted)
    return split
