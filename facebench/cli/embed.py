"""`facebench embed`: images -> float32 embeddings (.npy) with a JSON sidecar."""

from __future__ import annotations

DESCRIPTION = """\
Embed a pack, a verification bin, an image folder or a list of image files with a facebench
model.pt or an ONNX face recognition model. Writes OUT.npy (float32, one row per image, in the
source's order; L2-normalized unless --no-normalize) and OUT.json beside it (ids, labels or
paths, model name, input convention, flip-sum, normalized). Images must already be aligned
crops of the model's input size (see data_scripts/align.py).
Several processes or nodes: torchrun --nproc_per_node=N -m facebench embed ... (each rank
embeds a contiguous shard; rank 0 writes the same OUT.npy as one process would)."""


def register(subparsers) -> None:
    import argparse

    from facebench.cli import _types as t
    from facebench.cli._model_args import add_model_arguments
    from facebench.cli._options import add_progress_option

    p = subparsers.add_parser(
        "embed",
        help="images (pack, bin, folder, list) -> embeddings .npy + sidecar JSON",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_model_arguments(p)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--pack", help="InsightFace pack directory or .rec file")
    src.add_argument("--bin", help="verification bin (lfw.bin, ...): 2P images in pair order")
    src.add_argument("--folder", help="image folder (root/<identity>/<image> or flat)")
    src.add_argument("--list", help="text file: one image path per line, optional identity")
    p.add_argument(
        "--out", type=t.path, required=True, help="output .npy (the sidecar goes beside it)"
    )
    p.add_argument(
        "--flip-sum",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="add the embedding of the horizontally flipped image (standard protocol)",
    )
    p.add_argument(
        "--no-normalize", action="store_true", help="keep raw embeddings (no L2 normalization)"
    )
    add_progress_option(p)
    p.set_defaults(handler=run)


def run(args) -> int:
    from facebench.cli._model_args import embedder_from_args
    from facebench.embed.distributed import extraction_ranks
    from facebench.embed.io import sidecar_path
    from facebench.embed.pipeline import embed_to_file
    from facebench.embed.sources import open_source
    from facebench.errors import ConfigError
    from facebench.fileio import check_output_file

    if not args.out.endswith(".npy"):
        raise ConfigError(f"--out {args.out}: the embeddings file must end in .npy")
    check_output_file(args.out)
    check_output_file(sidecar_path(args.out), "--out (its sidecar)")
    source = open_source(args.pack, args.bin, args.folder, args.list)
    with extraction_ranks(args.device, args.out) as (device, sharding):
        args.device = device  # this rank's (cuda:LOCAL_RANK under torchrun)
        embedder = embedder_from_args(args)
        info = embed_to_file(
            embedder,
            source,
            args.out,
            batch_size=args.batch_size,
            flip_sum=args.flip_sum,
            normalize=not args.no_normalize,
            progress=not args.no_progress,
            model_path=args.model,
            sharding=sharding,
        )
    if info is None:  # another rank of a torchrun: rank 0 wrote the file
        return 0
    print(
        f"{info['count']} x {info['dim']} embeddings ({info['model']}, flip-sum "
        f"{'on' if info['flip_sum'] else 'off'}, {'' if info['normalized'] else 'not '}normalized)"
        f" -> {args.out} + {info['sidecar_path']}"
    )
    return 0
