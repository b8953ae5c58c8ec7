"""`facebench data`: inspect and convert packs, folders and bins; make synthetic identities."""

from __future__ import annotations

import argparse
import os

DESCRIPTION = """\
Read, convert and create face data without mxnet: InsightFace RecordIO packs (train.rec/.idx +
property), image folders (root/<identity>/<image>), verification bins (lfw.bin, ...), and
synthetic identity sets for CPU runs."""

SKIP_BAD_HELP = (
    "leave out images that do not decode (a bin: their pairs), list each and count them "
    "(default: the first bad image is an error)"
)


def register(subparsers) -> None:
    """Add `data` and its subcommands."""
    from facebench.cli import _types as t
    from facebench.cli._options import DefaultsHelpFormatter, add_progress_option

    parser = subparsers.add_parser(
        "data",
        help="inspect/convert packs, folders and bins; make synthetic data",
        description=DESCRIPTION,
    )
    sub = parser.add_subparsers(dest="data_command", metavar="SUBCOMMAND")
    parser.set_defaults(handler=lambda args: _help(parser))

    info = sub.add_parser(
        "info",
        help="counts, image size and a sample decode of a pack or bin",
        description="Show images, identities, property classes, image size and decode samples "
        "of a pack (directory or .rec) or a verification .bin.",
    )
    info.add_argument("path", help="pack directory, .rec file or .bin file")
    info.add_argument("--samples", type=t.COUNT, default=3, help="images to decode (default 3)")
    info.set_defaults(handler=_info)

    from_folder = sub.add_parser(
        "from-folder",
        help="image folder -> pack",
        description="Pack root/<identity>/<image> into OUT/train.rec, train.idx, property "
        "(InsightFace layout, images stored byte for byte) and classes.txt.",
    )
    from_folder.add_argument("folder", help="root of <identity>/<image> sub-folders")
    from_folder.add_argument("--out", type=t.path, required=True, help="new pack directory")
    add_progress_option(from_folder)
    from_folder.set_defaults(handler=_from_folder)

    to_folder = sub.add_parser(
        "to-folder",
        help="pack -> image folder",
        description="Write every image of a pack to OUT/<identity>/<key>.jpg (bytes unchanged).",
    )
    to_folder.add_argument("pack", help="pack directory or .rec file")
    to_folder.add_argument("--out", type=t.path, required=True, help="new folder")
    add_progress_option(to_folder)
    to_folder.add_argument("--skip-bad", action="store_true", help=SKIP_BAD_HELP)
    to_folder.set_defaults(handler=_to_folder)

    bin_to_folder = sub.add_parser(
        "bin-to-folder",
        help="verification bin -> folder of pairs",
        description="Write a bin as OUT/NNNNN_0.jpg, NNNNN_1.jpg per pair and OUT/issame.txt.",
    )
    bin_to_folder.add_argument("bin", help="verification .bin file")
    bin_to_folder.add_argument("--out", type=t.path, required=True, help="new folder")
    add_progress_option(bin_to_folder)
    bin_to_folder.add_argument("--skip-bad", action="store_true", help=SKIP_BAD_HELP)
    bin_to_folder.set_defaults(handler=_bin_to_folder)

    folder_to_bin = sub.add_parser(
        "folder-to-bin",
        help="folder of pairs -> verification bin",
        description="Inverse of bin-to-folder: NNNNN_0/NNNNN_1 images + issame.txt -> .bin.",
    )
    folder_to_bin.add_argument("folder", help="folder written by bin-to-folder (or alike)")
    folder_to_bin.add_argument("--out", type=t.path, required=True, help="output .bin file")
    add_progress_option(folder_to_bin)
    folder_to_bin.set_defaults(handler=_folder_to_bin)

    synth = sub.add_parser(
        "synth",
        help="write a synthetic identity pack and open-set verification bins",
        description="Draw face-like synthetic identities: OUT/train.rec/.idx + property "
        "(training identities), OUT/test.rec/.idx (other images of the same identities), "
        "OUT/synth_val.bin and OUT/synth_hard.bin (pairs of held-out identities, 10 folds x "
        "half same / half different). Deterministic for a seed.",
        formatter_class=DefaultsHelpFormatter,
    )
    synth.add_argument("--out", type=t.path, required=True, help="output directory")
    synth.add_argument("--identities", type=t.POSITIVE, default=100, help="training identities")
    synth.add_argument(
        "--images-per-identity", type=t.POSITIVE, default=20, help="training images per identity"
    )
    synth.add_argument(
        "--test-images-per-identity",
        type=t.COUNT,
        default=4,
        help="held-out images per training identity in test.rec (0: no test pack)",
    )
    synth.add_argument(
        "--val-identities", type=t.POSITIVE, default=100, help="held-out identities for the bins"
    )
    synth.add_argument(
        "--val-images-per-identity", type=t.POSITIVE, default=6, help="images per held-out identity"
    )
    synth.add_argument(
        "--pairs", type=t.POSITIVE, default=600, help="pairs per bin (multiple of 20)"
    )
    synth.add_argument(
        "--difficulty",
        type=t.DIFFICULTY,
        default=1.0,
        help="scale of pose/light/blur/noise/occlusion variation (0: none)",
    )
    synth.add_argument(
        "--hard-difficulty", type=t.DIFFICULTY, default=1.5, help="difficulty of synth_hard.bin"
    )
    synth.add_argument(
        "--image-size",
        type=t.integer(32, t.MAX_IMAGE_SIZE),
        default=112,
        help=f"square image size (32 to {t.MAX_IMAGE_SIZE})",
    )
    synth.add_argument("--seed", type=t.SEED, default=0, help="random seed")
    synth.add_argument(
        "--workers",
        type=t.WORKERS,
        default=min(2, os.cpu_count() or 1),
        help="processes that draw images (output does not depend on it)",
    )
    add_progress_option(synth)
    synth.set_defaults(handler=_synth)


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _info(args) -> int:
    if args.path.endswith(".bin"):
        from facebench.data.bins import describe_bin as describe
    else:
        from facebench.data.packs import check_pack_folder
        from facebench.data.packs import describe_pack as describe

        check_pack_folder(args.path)
    for line in describe(args.path, samples=args.samples):
        print(line)
    return 0


def _from_folder(args) -> int:
    from facebench.data.folders import folder_to_pack
    from facebench.fileio import check_output_dir

    check_output_dir(args.out, new=True)
    images, classes = folder_to_pack(args.folder, args.out, progress=not args.no_progress)
    print(f"wrote {args.out}: {images} images, {classes} identities")
    return 0


def _to_folder(args) -> int:
    from tqdm.contrib.logging import logging_redirect_tqdm

    from facebench.data.folders import pack_to_folder
    from facebench.fileio import check_output_dir

    check_output_dir(args.out, new=True)
    with logging_redirect_tqdm():  # skipped images are listed between progress bar updates
        images, identities, skipped = pack_to_folder(
            args.pack, args.out, skip_bad=args.skip_bad, progress=not args.no_progress
        )
    note = f"; skipped {len(skipped)} bad images (listed above)" if skipped else ""
    print(f"wrote {args.out}: {images} images in {identities} identity folders{note}")
    return 0


def _bin_to_folder(args) -> int:
    from tqdm.contrib.logging import logging_redirect_tqdm

    from facebench.data.bins import bin_to_folder
    from facebench.fileio import check_output_dir

    check_output_dir(args.out, new=True)
    with logging_redirect_tqdm():
        pairs, skipped = bin_to_folder(
            args.bin, args.out, skip_bad=args.skip_bad, progress=not args.no_progress
        )
    note = f"; skipped {len(skipped)} pairs with a bad image (listed above)" if skipped else ""
    print(f"wrote {args.out}: {pairs} pairs{note}")
    return 0


def _folder_to_bin(args) -> int:
    from facebench.data.bins import folder_to_bin
    from facebench.fileio import check_output_file

    check_output_file(args.out)
    pairs = folder_to_bin(args.folder, args.out, progress=not args.no_progress)
    print(f"wrote {args.out}: {pairs} pairs")
    return 0


def _synth(args) -> int:
    from facebench.data.synth.dataset import SynthConfig, write_synthetic_dataset
    from facebench.fileio import check_output_dir

    check_output_dir(args.out, new=True)
    cfg = SynthConfig(
        identities=args.identities,
        images_per_identity=args.images_per_identity,
        test_images_per_identity=args.test_images_per_identity,
        val_identities=args.val_identities,
        val_images_per_identity=args.val_images_per_identity,
        pairs=args.pairs,
        difficulty=args.difficulty,
        hard_difficulty=args.hard_difficulty,
        image_size=args.image_size,
        seed=args.seed,
    )
    summary = write_synthetic_dataset(
        args.out, cfg, workers=args.workers, progress=not args.no_progress
    )
    test = f", {summary['test_images']} test images" if "test_images" in summary else ""
    bins = ", ".join(f"{name} ({pairs} pairs)" for name, pairs in summary["bins"].items())
    print(
        f"wrote {args.out}: {summary['train_images']} train images of {summary['classes']} "
        f"identities{test}; {bins}"
    )
    return 0
