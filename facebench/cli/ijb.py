"""`facebench ijb`: IJB-B / IJB-C 1:1 template verification and 1:N search."""

from __future__ import annotations

DESCRIPTION = """\
Evaluate a model on IJB-B or IJB-C from InsightFace's release layout (ROOT/meta/*.txt, *.csv and
ROOT/loose_crop/): crops are aligned with the provided 5-point landmarks, image features are
emb(img) + emb(flip) times faceness, templates average within media and sum across media.
Writes OUT/<dataset>.json with TAR@FAR as published (the ROC point whose FPR is nearest each
target: tar_at_nearest_far, printed) and with FAR <= target (tar_at_far, as `facebench verify`),
each with its thresholds, the exact global threshold, EER, AUC and, when the 1:N lists are
present, CMC and rank-1 TPIR@FPIR per gallery.
Several processes or nodes: torchrun --nproc_per_node=N -m facebench ijb ... (each rank embeds
a contiguous shard of the images; rank 0 writes the report)."""


def register(subparsers) -> None:
    import argparse

    from facebench.cli import _types as t
    from facebench.cli._model_args import add_model_arguments
    from facebench.cli._options import add_progress_option

    p = subparsers.add_parser(
        "ijb",
        help="IJB-B/IJB-C 1:1 TAR@FAR and 1:N TPIR@FPIR",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_model_arguments(p)
    p.add_argument("--root", required=True, help="IJB folder holding meta/ and loose_crop/")
    p.add_argument("--dataset", default="ijbc", choices=("ijbc", "ijbb"), help="file prefix")
    p.add_argument("--out", type=t.path, required=True, help="output directory for <dataset>.json")
    p.add_argument("--no-1n", action="store_true", help="skip 1:N even when its lists exist")
    add_progress_option(p)
    p.set_defaults(handler=run)


def run(args) -> int:
    import os

    from facebench import schema
    from facebench.cli._model_args import embedder_from_args
    from facebench.embed.distributed import extraction_ranks
    from facebench.eval.ijb import evaluate_ijb
    from facebench.fileio import check_output_dir, write_json

    check_output_dir(args.out, files=(f"{args.dataset}.json",))
    with extraction_ranks(args.device, args.out) as (device, sharding):
        args.device = device  # this rank's (cuda:LOCAL_RANK under torchrun)
        embedder = embedder_from_args(args)
        r = evaluate_ijb(
            args.root,
            embedder,
            args.dataset,
            args.batch_size,
            one_to_n=False if args.no_1n else None,
            progress=not args.no_progress,
            sharding=sharding,
        )
    if r is None:  # another rank of a torchrun: rank 0 writes the report
        return 0
    r["model"] = args.model
    path = write_json(os.path.join(args.out, f"{args.dataset}.json"), r)
    tars = "  ".join(f"TAR@{k} {100 * v:.2f}" for k, v in r[schema.TAR_AT_NEAREST_FAR].items())
    print(f"{args.dataset} 1:1: {tars}  AUC {r[schema.AUC]:.4f}")
    for name, g in r.get("one_to_n", {}).items():
        tpir = "  ".join(
            f"TPIR@{k} {100 * v:.2f}" for k, v in g.get(schema.DIR_AT_FPIR, {}).items()
        )
        print(f"{args.dataset} 1:N {name}: rank-1 {100 * g[schema.CMC]['1']:.2f}  {tpir}")
    print(f"report: {path}")
    return 0
