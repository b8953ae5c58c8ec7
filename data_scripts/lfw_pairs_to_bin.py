#!/usr/bin/env python
"""LFW-style ``pairs.txt`` + an aligned image tree -> a verification ``.bin`` (InsightFace layout).

pairs.txt: an optional header (``10 300``: folds and pairs per kind), then one pair per line:
``name n1 n2`` (same person) or ``name1 n1 name2 n2`` (different people). Image ``n`` of
``name`` is ``ROOT/name/name_NNNN.jpg`` (``--pattern`` changes it). Images must already be
aligned (112x112 for InsightFace models, e.g. by data_scripts/align.py); their bytes are stored
unchanged, so the bin matches what InsightFace's lfw.bin holds for the same images.

    python data_scripts/lfw_pairs_to_bin.py --pairs pairs.txt --root lfw_aligned --out lfw.bin
"""

from __future__ import annotations

import argparse
import os
import sys

from tqdm import tqdm

from facebench.data.bins import write_verification_bin
from facebench.data.images import decode_image
from facebench.errors import DataError, FacebenchError
from facebench.fileio import check_output_file


def parse_pairs(path: str) -> list[tuple[str, int, str, int]]:
    """``(name1, n1, name2, n2)`` per pair, in file order; the header line is skipped."""
    try:
        with open(path) as f:
            lines = [(i, line.split()) for i, line in enumerate(f, 1) if line.strip()]
    except OSError as exc:
        raise DataError(f"{path}: cannot read pairs file ({exc.strerror})") from exc
    if lines and len(lines[0][1]) <= 2 and all(x.isdigit() for x in lines[0][1]):
        lines = lines[1:]
    pairs = []
    for number, fields in lines:
        try:
            if len(fields) == 3:
                pairs.append((fields[0], int(fields[1]), fields[0], int(fields[2])))
            elif len(fields) == 4:
                pairs.append((fields[0], int(fields[1]), fields[2], int(fields[3])))
            else:
                raise ValueError
        except ValueError:
            raise DataError(
                f"{path}: line {number}: expected 'name n1 n2' or 'name1 n1 name2 n2'"
            ) from None
    if not pairs:
        raise DataError(f"{path}: no pairs")
    return pairs


def pairs_to_bin(pairs_path: str, root: str, out: str, pattern: str) -> tuple[int, int]:
    """Write the bin; returns ``(pairs, genuine pairs)``."""
    pairs = parse_pairs(pairs_path)
    images, issame, shape = [], [], None
    for name1, n1, name2, n2 in tqdm(pairs, desc="pairs", unit="pair"):
        for name, n in ((name1, n1), (name2, n2)):
            path = os.path.join(root, pattern.format(name=name, n=n))
            try:
                with open(path, "rb") as f:
                    data = f.read()
            except OSError as exc:
                raise DataError(f"{path}: cannot read image ({exc.strerror})") from exc
            size = decode_image(data, source=path).shape
            if shape is not None and size != shape:
                raise DataError(
                    f"{path}: image is {size[0]}x{size[1]}, others are {shape[0]}x{shape[1]}"
                )
            shape = size
            images.append(data)
        issame.append(name1 == name2)
    write_verification_bin(out, images, issame)
    return len(pairs), sum(issame)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", required=True, help="LFW-style pairs.txt")
    parser.add_argument("--root", required=True, help="folder of aligned images, one per person")
    parser.add_argument("--out", required=True, help="output .bin file")
    parser.add_argument(
        "--pattern",
        default="{name}/{name}_{n:04d}.jpg",
        help="image path under ROOT (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    try:
        check_output_file(args.out)
        count, genuine = pairs_to_bin(args.pairs, args.root, args.out, args.pattern)
    except FacebenchError as exc:
        print(f"lfw_pairs_to_bin: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}: {count} pairs ({genuine} genuine, {count - genuine} impostor)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
