"""`facebench verify`: verification bins -> one JSON report per bin and a transfer table."""

from __future__ import annotations

from facebench import schema

DESCRIPTION = """\
Score verification bins (lfw.bin, cfp_fp.bin, ...) with a model or precomputed embeddings.
Writes OUT/<bin>.json per bin (standard 10-fold accuracy and VAL@FAR=1e-3, the exact oracle
global threshold in cosine, EER, AUC, TAR@FAR) and OUT/transfer.json (thresholds chosen on each
bin applied to every other bin).
Several processes or nodes: torchrun --nproc_per_node=N -m facebench verify --model ... (each
rank embeds a contiguous shard of every bin; rank 0 scores and writes the reports)."""


def register(subparsers) -> None:
    import argparse

    from facebench.cli import _types as t
    from facebench.cli._model_args import add_model_arguments
    from facebench.cli._options import add_progress_option

    p = subparsers.add_parser(
        "verify",
        help="verification bins -> JSON reports (10-fold, global threshold, TAR@FAR)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_model_arguments(p, required=False)
    p.add_argument(
        "--embeddings",
        action="append",
        help="precomputed (2P, d) .npy in the bin's image order, one per --bin (not with --model)",
    )
    p.add_argument("--bin", action="append", required=True, help="verification bin (repeatable)")
    p.add_argument(
        "--out", type=t.path, required=True, help="output directory for the JSON reports"
    )
    p.add_argument(
        "--target-far", type=t.RATE, default=1e-3, help="FAR of the transfer table's threshold"
    )
    p.add_argument("--name", help="model name written into the reports")
    add_progress_option(p)
    p.set_defaults(handler=run)


def run(args) -> int:
    from facebench.errors import ConfigError
    from facebench.eval.verify_bins import verify_bins

    if (args.model is None) == (args.embeddings is None):
        raise ConfigError("verify: give exactly one of --model or --embeddings")
    from facebench.cli._model_args import embedder_from_args
    from facebench.embed.distributed import extraction_ranks
    from facebench.eval.verify_bins import bin_name
    from facebench.fileio import check_output_dir, staged

    outputs = (*(f"{bin_name(b)}.json" for b in args.bin), "transfer.json")
    check_output_dir(args.out, files=outputs)
    with extraction_ranks(args.device, args.out) as (device, sharding):
        args.device = device  # this rank's (cuda:LOCAL_RANK under torchrun)
        embedder = embedder_from_args(args) if args.model else None
        with staged():  # every report, or none
            reports = verify_bins(
                args.bin,
                args.out,
                embedder=embedder,
                embedding_paths=args.embeddings,
                batch_size=args.batch_size,
                target_far=args.target_far,
                model_name=args.name,
                progress=not args.no_progress,
                sharding=sharding,
            )
    if reports is None:  # another rank of a torchrun: rank 0 wrote the reports
        return 0
    for name, r in reports.items():
        mean, std, accuracy, threshold, eer, auc = schema.headline(r).values()
        print(
            f"{name}: 10-fold {100 * mean:.2f} +- {100 * std:.2f}  global {100 * accuracy:.2f} "
            f"(cos > {threshold:.4f})  EER {100 * eer:.2f}  AUC {auc:.4f}"
        )
    print(f"reports in {args.out}")
    return 0
