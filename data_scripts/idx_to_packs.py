"""Convert an MNIST-format idx-ubyte set (MNIST, Fashion-MNIST, ...) into facebench packs
(library: facebench.data.idx_packs).

Writes, under ``--out``:
  closed/train, closed/test   packs of every class (train split, test split)
  open/train                  pack of ``--open-train-classes`` only (train split, labels 0..)
  open/heldout.bin            verification bin from the other classes' test images, LFW layout:
                              10 folds x (n genuine pairs, then n impostor pairs)
  closed/fit, closed/val      with --val-per-class: closed/train split for tuning
  split.json                  what was written: classes, label maps, counts, seed
Images are stored lossless (PNG) at their own size (28x28), grey replicated to 3 channels.

Example (Debian's dataset-fashion-mnist):
  python data_scripts/idx_to_packs.py /usr/share/datasets/fashion-mnist --out data/fmnist
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from facebench.data.idx_packs import convert_idx_set, parse_classes
from facebench.errors import DataError, FacebenchError
from facebench.fileio import atomic_dir, check_output_dir


def build_parser() -> argparse.ArgumentParser:
    """The script's command line."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("src", help="directory with {train,t10k}-{images,labels} idx(.gz) files")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument(
        "--open-train-classes",
        default="0-5",
        help="classes the open-set model trains on; the rest are held out (default 0-5)",
    )
    parser.add_argument(
        "--train-per-class", type=int, help="keep at most this many train images per class"
    )
    parser.add_argument(
        "--test-per-class", type=int, help="keep at most this many test images per class"
    )
    parser.add_argument(
        "--pairs-per-half",
        type=int,
        default=300,
        help="genuine (and impostor) pairs per fold of the held-out bin (default 300, as LFW)",
    )
    parser.add_argument(
        "--val-per-class",
        type=int,
        help="also split the train pack into closed/fit and closed/val (this many per class)",
    )
    parser.add_argument(
        "--fit-per-class",
        type=int,
        help="with --val-per-class: keep at most this many images per class in closed/fit",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of subsets and pairs")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the conversion; one-line error and status 2 on bad input."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        sizes = ("train_per_class", "test_per_class", "pairs_per_half", "val_per_class")
        for name in (*sizes, "fit_per_class"):
            value = getattr(args, name)
            if value is not None and value < 1:
                raise DataError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
        check_output_dir(args.out, new=True)
        with atomic_dir(args.out) as tmp:
            split = convert_idx_set(
                args.src,
                tmp,
                parse_classes(args.open_train_classes),
                train_per_class=args.train_per_class,
                test_per_class=args.test_per_class,
                pairs_per_half=args.pairs_per_half,
                seed=args.seed,
                val_per_class=args.val_per_class,
                fit_per_class=args.fit_per_class,
            )
    except FacebenchError as exc:
        print(f"idx_to_packs: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(split["counts"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
