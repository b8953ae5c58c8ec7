"""`facebench search`: probes against a gallery: top-k identities and an open-set decision."""

from __future__ import annotations

DESCRIPTION = """\
Search probe embeddings in a gallery built by `facebench index build`. For each probe: the top-k
identities, each with its best cosine over its gallery images (--per-image: the top-k images,
where one identity may fill several ranks), and a decision: the best identity when its cosine is
above the global threshold, else "unknown". The threshold is given (--threshold) or read from a
report (--threshold-from): a `facebench verify` report (lfw.json) or an IJB report gives its
global_threshold, or with --far the threshold whose FAR on its pairs is at most that target
(the one behind its tar_at_far); an identification report gives, with --far, its threshold at
that FPIR. Results go to a .json or .csv file."""


def register(subparsers) -> None:
    import argparse

    from facebench.cli import _types as t
    from facebench.cli._faiss_args import add_faiss_device_arguments

    p = subparsers.add_parser(
        "search",
        help="probe embeddings vs a gallery -> top-k identities and identity/unknown decisions",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--index", required=True, help="gallery index file")
    p.add_argument("--embeddings", required=True, help="probe embeddings .npy")
    p.add_argument("--sidecar", help="probe sidecar JSON (default: beside the .npy)")
    thr = p.add_mutually_exclusive_group(required=True)
    thr.add_argument("--threshold", type=t.COSINE, help="global cosine threshold")
    thr.add_argument("--threshold-from", help="verify, ijb or identification report JSON")
    p.add_argument(
        "--far", type=t.RATE, help="with --threshold-from: the threshold at this FAR (FPIR)"
    )
    p.add_argument("--top-k", type=t.POSITIVE, default=5, help="identities listed per probe")
    p.add_argument(
        "--per-image",
        action="store_true",
        help="list the top-k gallery images instead (one identity may fill several ranks)",
    )
    p.add_argument("--search-params", help="faiss parameters, e.g. nprobe=32 or efSearch=128")
    p.add_argument("--out", type=t.path, required=True, help="results file (.json or .csv)")
    add_faiss_device_arguments(p)
    p.set_defaults(handler=run)


def run(args) -> int:
    from facebench.errors import ConfigError
    from facebench.search.service import search_probes, threshold_from_report, write_search_results

    if args.far is not None and args.threshold_from is None:
        raise ConfigError("--far needs --threshold-from")
    if not args.out.endswith((".json", ".csv")):
        raise ConfigError(f"--out {args.out}: results go to a .json or .csv file")
    from facebench.fileio import check_output_file

    check_output_file(args.out)
    threshold = (
        args.threshold
        if args.threshold is not None
        else threshold_from_report(args.threshold_from, args.far)
    )
    report = search_probes(
        args.index,
        args.embeddings,
        threshold,
        args.top_k,
        args.sidecar,
        args.search_params,
        per_image=args.per_image,
        device=args.device,
        gpu_shard=args.gpu_shard,
    )
    write_search_results(args.out, report)
    print(
        f"{report['probes']} probes vs {report['gallery_size']} gallery embeddings, "
        f"threshold cos > {threshold:.4f}: {report['identified']} identified, "
        f"{report['unknown']} unknown -> {args.out}"
    )
    return 0
