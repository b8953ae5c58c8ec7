"""`facebench report`: Markdown and PNG figures from the JSON reports of one or more runs."""

from __future__ import annotations

DESCRIPTION = """\
Render OUT/report.md and OUT/figures/*.png from JSON reports only: ROC curves (log FAR),
genuine/impostor cosine histograms with the global (and learned) threshold, accuracy against a
single threshold, threshold transfer between data sets, uniform metrics, IJB and identification
tables, and a side-by-side comparison when several runs are given. Each RUN_DIR is a run
directory (its reports/ folder is read), a folder of JSON reports, or one JSON file."""


def register(subparsers) -> None:
    import argparse

    from facebench.cli import _types as t

    p = subparsers.add_parser(
        "report",
        help="Markdown + PNG report from JSON reports (several runs side by side)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directory or report folder")
    p.add_argument(
        "--out", type=t.path, required=True, help="output directory for report.md and figures/"
    )
    p.add_argument(
        "--name", action="append", help="label of each run, in order (default: directory names)"
    )
    p.set_defaults(handler=run)


def run(args) -> int:
    from facebench.fileio import check_output_dir, staged
    from facebench.report import render_report

    check_output_dir(args.out, files=("report.md",))
    with staged():  # report.md and its figures, or nothing
        path = render_report(args.runs, args.out, args.name)
    print(f"report: {path}")
    return 0
