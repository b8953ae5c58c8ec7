"""`facebench quickstart`: the main job on synthetic faces, on CPU, in a few minutes."""

from __future__ import annotations

from pathlib import Path

DESCRIPTION = """\
Generate synthetic identities (a training pack in InsightFace format, held-out images of the
training identities, and open-set verification bins of other identities) if they are missing,
train bce_u (with margin), ArcFace, CosFace and SoftMax models, evaluate each with the standard
10-fold protocol, the single global threshold, TAR@FAR, the uniform metrics and open-set
identification in a faiss gallery, and write a report folder (Markdown, JSON, PNG figures).
The default size takes a few minutes on 2 CPU cores (docs/quickstart.md gives the time
measured with this version); --quick is the smoke-test size CI runs."""


def register(subparsers) -> None:
    import argparse

    from facebench.cli import _types as t
    from facebench.cli._options import add_progress_option

    p = subparsers.add_parser(
        "quickstart",
        help="train four heads on synthetic faces and compare them (the main job)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--out",
        type=t.path,
        help="report folder to create; must not exist (default: "
        "facebench-quickstart-<date>-<time> in the current folder)",
    )
    p.add_argument(
        "--data",
        type=t.path,
        default="facebench-data",
        help="folder for the synthetic data, reused by later runs (default: %(default)s)",
    )
    p.add_argument("--quick", action="store_true", help="a reduced size for smoke tests and CI")
    p.add_argument("--device", default="cpu", help="torch device (default: %(default)s)")
    p.add_argument("--recipes", help="recipes folder (default: recipes/ of this checkout)")
    add_progress_option(p)
    p.add_argument(
        "--heads",
        nargs="+",
        action="extend",
        metavar="HEAD",
        help="registered heads to compare, each with a recipes/synth/HEAD.yaml "
        "(default: bce_u arcface cosface softmax)",
    )
    p.add_argument(
        "--workers",
        type=t.WORKERS,
        help="heads trained at once, each on one thread; the results do not depend on it "
        "(default: one per CPU core, at most 2; 1 on a GPU)",
    )
    p.set_defaults(handler=run)


def run(args) -> int:
    import time

    from facebench.quickstart import HEADS, run_quickstart

    out = args.out or time.strftime("facebench-quickstart-%Y%m%d-%H%M%S")
    heads = tuple(args.heads or HEADS)
    report = run_quickstart(
        out,
        args.data,
        size="quick" if args.quick else "default",
        device=args.device,
        recipes_dir=args.recipes,
        progress=not args.no_progress,
        heads=heads,
        workers=args.workers,
    )
    print(summary(report, heads))
    return 0


def summary(report: Path, heads: tuple[str, ...]) -> str:
    """What the command prints at the end: the comparison table and the report's path (also how
    docs/regen.py reprints a finished quickstart without training it again)."""
    from facebench.report import comparison_table

    table = comparison_table([str(report.parent / "runs" / head) for head in heads])
    return f"{table}\nreport: {report}"
