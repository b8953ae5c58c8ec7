"""`facebench uniform`: uniform classification metrics of a model's head on a pack."""

from __future__ import annotations

from facebench import schema

DESCRIPTION = """\
Score every image of a pack (held-out images of the training identities) with the model's
backbone and stored head, and report sample-wise accuracy, uniform accuracy with its exact best
threshold t*, class-wise accuracy (both readings) and the head's learned threshold (b/scale)
beside t*. Writes OUT/uniform.json.
Several processes or nodes: torchrun --nproc_per_node=N -m facebench uniform ... (each rank
embeds a contiguous shard of the pack; rank 0 writes the report)."""


def register(subparsers) -> None:
    import argparse

    from facebench.cli import _types as t
    from facebench.cli._options import add_progress_option

    p = subparsers.add_parser(
        "uniform",
        help="uniform / sample-wise / class-wise accuracy of a head on a pack",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", required=True, help="facebench model.pt that stores its head")
    p.add_argument("--pack", required=True, help="pack directory (or .rec) of training identities")
    p.add_argument("--out", type=t.path, required=True, help="output directory for uniform.json")
    p.add_argument("--device", default="cpu", help="torch device (cpu, cuda)")
    p.add_argument("--batch-size", type=t.POSITIVE, default=64, help="images per forward pass")
    p.add_argument(
        "--flip-sum",
        action="store_true",
        help="add the flipped image's embedding (off: as trained)",
    )
    add_progress_option(p)
    p.set_defaults(handler=run)


def run(args) -> int:
    import os

    from facebench.embed.distributed import extraction_ranks
    from facebench.eval.uniform_model import evaluate_uniform_model
    from facebench.fileio import check_output_dir, write_json

    check_output_dir(args.out, files=("uniform.json",))
    with extraction_ranks(args.device, args.out) as (device, sharding):
        r = evaluate_uniform_model(
            args.model,
            args.pack,
            device,
            args.batch_size,
            flip_sum=args.flip_sum,
            progress=not args.no_progress,
            sharding=sharding,
        )
    if r is None:  # another rank of a torchrun: rank 0 writes the report
        return 0
    path = write_json(os.path.join(args.out, "uniform.json"), r)
    t_star = "none" if r[schema.UNIFORM_THRESHOLD] is None else f"{r[schema.UNIFORM_THRESHOLD]:.4f}"
    learned = (
        "none" if r[schema.LEARNED_THRESHOLD] is None else f"{r[schema.LEARNED_THRESHOLD]:.4f}"
    )
    print(
        f"sample-wise {100 * r[schema.SAMPLE_ACCURACY]:.2f}  "
        f"uniform {100 * r[schema.UNIFORM_ACCURACY]:.2f}"
        f" (t* {t_star})  class-wise {100 * r[schema.CLASS_WISE_ACCURACY_SAMPLE_WEIGHTED]:.2f} "
        f"(class mean {100 * r[schema.CLASS_WISE_ACCURACY_CLASS_MEAN]:.2f})  learned threshold "
        f"{learned} [{r[schema.SCORE_UNITS]}]"
    )
    print(f"report: {path}")
    return 0
