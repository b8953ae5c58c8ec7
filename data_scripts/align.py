"""Crop aligned faces (5-point similarity onto the ArcFace template) from photographs.

Landmarks come from a file (IJB's ``name x1 y1 ... x5 y5 faceness`` text, CSV or JSON; image names
relative to --images) or from a face detector ONNX you supply (SCRFD / RetinaFace, loaded through
insightface's model zoo; the largest face of each image is kept). Writes under --out:
  <image path>.png          the aligned crop, lossless (same relative path, .png; repeats get
                            _1, _2, ...; --format jpg --quality N writes JPEG instead)
  landmarks.json            for every crop: the photo it was cut from and the landmarks used
  failures.txt              every image that could not be aligned, with the reason
The output directory is written under a temporary name and renamed when complete.

Examples:
  python data_scripts/align.py --images IJBC/loose_crop \\
      --landmarks IJBC/meta/ijbc_name_5pts_score.txt --out IJBC/aligned
  python data_scripts/align.py --images photos/ --detector det_10g.onnx --out photos_aligned
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from tqdm import tqdm

from facebench.data.align import align_face, detect_landmarks, load_detector, read_landmarks
from facebench.data.images import encode_image, read_image
from facebench.embed.sources import list_images
from facebench.errors import DataError, FacebenchError
from facebench.fileio import atomic_dir, check_output_dir

log = logging.getLogger("align")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--images", required=True, help="root folder of the photographs")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--landmarks", help="landmark file: IJB 5-point .txt, .csv or .json")
    src.add_argument("--detector", help="SCRFD / RetinaFace ONNX face detector")
    p.add_argument("--det-size", type=int, default=640, help="detector input size (square)")
    p.add_argument("--det-thresh", type=float, default=0.5, help="detector score threshold")
    p.add_argument("--size", type=int, default=112, help="crop size (multiple of 112 or 128)")
    p.add_argument(
        "--format",
        choices=("png", "jpg"),
        default="png",
        help="crop format: png (lossless, the default) or jpg (smaller, lossy)",
    )
    p.add_argument("--quality", type=int, help="JPEG quality 1-100 with --format jpg (95)")
    p.add_argument("--out", required=True, help="output folder (must not exist)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = p.parse_args(argv)
    if args.quality is not None and args.format != "jpg":
        p.error("--quality applies to --format jpg only (PNG crops are lossless)")
    if args.quality is not None and not 1 <= args.quality <= 100:
        p.error(f"--quality must be within 1..100, got {args.quality}")
    return args


def _unique(name: str, taken: set[str]) -> str:
    """``name``, or ``stem_k.ext`` for the k-th repeat."""
    stem, ext = os.path.splitext(name)
    candidate, k = name, 0
    while candidate in taken:
        k += 1
        candidate = f"{stem}_{k}{ext}"
    taken.add(candidate)
    return candidate


def _jobs(args):
    """``(relative image name, landmarks or None)``: None means "ask the detector"."""
    if args.landmarks:
        return read_landmarks(args.landmarks)
    return [(os.path.relpath(p, args.images), None) for p in list_images(args.images)]


def align_folder(args) -> tuple[int, int]:
    """Align every job into a temporary folder renamed to --out; return (aligned, failed)."""
    check_output_dir(args.out, new=True)
    detector = (
        load_detector(args.detector, args.det_size, args.det_thresh) if args.detector else None
    )
    jobs = _jobs(args)
    if not jobs:
        raise DataError(f"{args.landmarks or args.images}: no faces to align")
    with atomic_dir(args.out) as tmp:
        used, failures = _align_into(tmp, jobs, detector, args)
    return len(used), len(failures)


def _align_into(tmp: str, jobs, detector, args) -> tuple[dict, list]:
    """Write crops, landmarks.json and failures.txt into ``tmp``."""
    used, failures, taken = {}, [], set()
    ext = f".{args.format}"
    quality = 95 if args.quality is None else args.quality
    for name, points in tqdm(jobs, desc="align", unit="face", disable=args.no_progress):
        try:
            rgb = read_image(os.path.join(args.images, name))
            if points is None:
                points = detect_landmarks(detector, rgb)
                if points is None:
                    raise DataError("no face detected")
            crop = align_face(rgb, points, args.size)
        except DataError as exc:
            failures.append((name, str(exc).replace("\t", " ")))
            continue
        out_name = _unique(os.path.splitext(name)[0] + ext, taken)
        out_path = os.path.join(tmp, out_name)
        os.makedirs(os.path.dirname(out_path), exist_ok=True)
        with open(out_path, "wb") as f:
            f.write(encode_image(crop, ext, quality=quality))
        used[out_name] = {"photo": name, "landmarks": points.tolist()}
    with open(os.path.join(tmp, "landmarks.json"), "w") as f:
        json.dump(used, f, indent=1)
    with open(os.path.join(tmp, "failures.txt"), "w") as f:
        f.writelines(f"{name}\t{reason}\n" for name, reason in failures)
    return used, failures


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        aligned, failed = align_folder(args)
    except FacebenchError as exc:
        print(f"align: error: {exc}", file=sys.stderr)
        return 2
    print(f"{aligned} faces aligned into {args.out}; {failed} failed (listed in failures.txt)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
