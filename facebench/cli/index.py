"""`facebench index`: build or extend a faiss gallery of embeddings with identities."""

from __future__ import annotations

DESCRIPTION = """\
Build a faiss gallery from one or more embedding .npy files (from `facebench embed`, e.g. the
shards of a large gallery) whose sidecars hold the identities ('identities' or 'labels'), or add
more embeddings to an existing gallery. The files are streamed (memory-mapped, a chunk at a time),
never loaded whole. Embeddings are L2-normalized, so inner product = cosine. The index is exact
("Flat") by default; give a faiss factory string for large galleries ("IVF4096,Flat",
"IVF4096,PQ64", "HNSW32"): indexes that need training are trained on a sample of rows drawn over
all files (--train-rows). --on-disk keeps an IVF index's inverted lists in OUT.ivfdata, mapped
from disk when searching, so the gallery need not fit in memory."""


def register(subparsers) -> None:
    import argparse

    from facebench.cli import _types as t
    from facebench.cli._faiss_args import add_faiss_device_arguments
    from facebench.cli._options import DefaultsHelpFormatter

    p = subparsers.add_parser(
        "index",
        help="build / extend a faiss gallery (embeddings + identities)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="index_command", metavar="ACTION", required=True)
    build = sub.add_parser(
        "build",
        help="new gallery from embeddings",
        description="Write a new faiss gallery file (--out) from one or more embedding .npy "
        "files (streamed, never loaded whole) and the identities in their sidecars. --factory "
        "picks the index: Flat (exact, the default) or an approximate one, trained on a sample "
        "of these embeddings; --on-disk keeps an IVF index's lists in OUT.ivfdata.",
        formatter_class=DefaultsHelpFormatter,
    )
    build.add_argument(
        "--embeddings",
        required=True,
        nargs="+",
        action="extend",
        help="gallery embeddings .npy file(s)",
    )
    build.add_argument("--sidecar", help="sidecar JSON of a single .npy (default: beside it)")
    build.add_argument("--out", type=t.path, required=True, help="gallery index file to write")
    build.add_argument("--factory", default="Flat", help="faiss index factory string")
    build.add_argument(
        "--train-rows", type=t.POSITIVE, help="rows sampled to train IVF/PQ (default: 64 per list)"
    )
    build.add_argument(
        "--on-disk", action="store_true", help="IVF: keep the inverted lists in OUT.ivfdata"
    )
    add_faiss_device_arguments(build)
    build.set_defaults(handler=run_build)
    add = sub.add_parser(
        "add",
        help="add embeddings to a gallery",
        description="Add the embeddings of one or more .npy files (identities from their "
        "sidecars) to an existing gallery built by `facebench index build`; the index file (and "
        "an on-disk gallery's lists file) is replaced with the larger gallery. Embeddings must "
        "have the gallery's dimension.",
    )
    add.add_argument(
        "--index", type=t.path, required=True, help="gallery index file (rewritten in place)"
    )
    add.add_argument(
        "--embeddings", required=True, nargs="+", action="extend", help="embeddings .npy file(s)"
    )
    add.add_argument("--sidecar", help="sidecar JSON of a single .npy (default: beside it)")
    add.set_defaults(handler=run_add)


def _summary(gallery) -> str:
    people = gallery.identity_count()
    where = f", lists on disk in {gallery.lists_path}" if gallery.lists_path else ""
    return f"{len(gallery)} x {gallery.dim} ({gallery.factory}), {people} identities{where}"


def run_build(args) -> int:
    from facebench.fileio import check_output_file
    from facebench.search.service import build_gallery

    check_output_file(args.out)
    gallery = build_gallery(
        args.embeddings,
        args.out,
        args.sidecar,
        args.factory,
        args.on_disk,
        args.train_rows,
        args.device,
        args.gpu_shard,
    )
    print(f"gallery {args.out}: {_summary(gallery)}")
    return 0


def run_add(args) -> int:
    from facebench.fileio import check_output_file
    from facebench.search.service import add_to_gallery

    check_output_file(args.index, "--index", overwrite=True)
    gallery = add_to_gallery(args.index, args.embeddings, args.sidecar)
    print(f"gallery {args.index}: {_summary(gallery)}")
    return 0
