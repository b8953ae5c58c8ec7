"""`facebench index`: build or extend a faiss gallery of embeddings with identities."""

from __future__ import annotations

DESCRIPTION = """\
Build a faiss gallery from an embeddings .npy (from `facebench embed`) whose sidecar holds the
identities ('identities' or 'labels'), or add more embeddings to an existing gallery. Embeddings
are L2-normalized, so inner product = cosine. The index is exact ("Flat") by default; give a
faiss factory string for large galleries ("IVF4096,Flat", "IVF4096,PQ64", "HNSW32"): indexes that
need training are trained on the first embeddings added."""


def register(subparsers) -> None:
    import argparse

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
        description="Write a new faiss gallery file (--out) from an "
        "embeddings .npy and the identities in its sidecar. --factory picks the index: Flat "
        "(exact, the default) or an approximate one, trained on these embeddings.",
        formatter_class=DefaultsHelpFormatter,
    )
    build.add_argument("--embeddings", required=True, help="gallery embeddings .npy")
    build.add_argument("--sidecar", help="sidecar JSON (default: beside the .npy)")
    build.add_argument("--out", required=True, help="gallery index file to write")
    build.add_argument("--factory", default="Flat", help="faiss index factory string")
    build.set_defaults(handler=run_build)
    add = sub.add_parser(
        "add",
        help="add embeddings to a gallery",
        description="Add the embeddings of a .npy (identities from its sidecar) to an existing "
        "gallery built by `facebench index build`; the index file is replaced with the larger "
        "gallery. Embeddings must have the gallery's dimension.",
    )
    add.add_argument("--index", required=True, help="gallery index file (rewritten in place)")
    add.add_argument("--embeddings", required=True, help="embeddings .npy to add")
    add.add_argument("--sidecar", help="sidecar JSON (default: beside the .npy)")
    add.set_defaults(handler=run_add)


def _summary(gallery) -> str:
    people = len(set(gallery.identities.tolist()))
    return f"{len(gallery)} x {gallery.dim} ({gallery.factory}), {people} identities"


def run_build(args) -> int:
    from facebench.fileio import check_output_file
    from facebench.search.service import build_gallery

    check_output_file(args.out)
    gallery = build_gallery(args.embeddings, args.out, args.sidecar, args.factory)
    print(f"gallery {args.out}: {_summary(gallery)}")
    return 0


def run_add(args) -> int:
    from facebench.fileio import check_output_file
    from facebench.search.service import add_to_gallery

    check_output_file(args.index, "--index", overwrite=True)
    gallery = add_to_gallery(args.index, args.embeddings, args.sidecar)
    print(f"gallery {args.index}: {_summary(gallery)}")
    return 0
