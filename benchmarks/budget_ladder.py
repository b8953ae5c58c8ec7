"""How far a study's budget is from converged: its chosen settings at several multiples of it.

Trains each head's chosen settings (OUT/settings.json) on the study's tuning task (closed/fit,
scored on closed/val) over the first ``--seeds`` tuning seeds at every ``--factors`` multiple of
the study's budget B (OUT/study_setup.json's epochs; the same schedule shape: LR drops at the
same fractions of training), and prints per head the mean validation sample-wise and uniform
accuracy per factor with the change from the previous factor, paired by seed (95 % t interval
with 2+ seeds). The runs go into OUT/runs under the study's own keys, so every run the study
made is reused: factor 1 is the tuning runs, factor 2 the ``--budget-check`` runs
(``facebench.study.plan.budget_check_runs``); the others (``-x4``, ``-x8``) are trained,
``--workers`` side by side, and kept for the next call. The table is also written to
OUT/budget_ladder.md. The budget rule (``facebench.study.stats``): doubling B moves both means
by less than 0.01 over 2+ seeds.

    python benchmarks/budget_ladder.py --study study_out --recipe recipes/study/fashion_mnist.yaml
    python benchmarks/budget_ladder.py --study study_out --recipe R --heads bce_u --seeds 2
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import sys
from pathlib import Path

from facebench import schema
from facebench.cli import OneLineParser, run
from facebench.cli import _types as t
from facebench.errors import ConfigError, DataError, FacebenchError
from facebench.fileio import check_output_dir, read_json, write_text
from facebench.runs import map_runs
from facebench.study import plan
from facebench.study.heads import select_heads
from facebench.study.report import interval_text
from facebench.study.runs import RESULT_NAME, run_epochs, train_and_measure
from facebench.study.stats import BUDGET_METRICS, BUDGET_TOLERANCE, budget_converged, mean_interval

PROG = "budget_ladder"
LADDER_FILE = "budget_ladder.md"

log = logging.getLogger(PROG)


def factors(text: str) -> list[float]:
    """``--factors``: comma-separated multiples of the budget, each > 0; sorted, once each."""
    return sorted({t.POSITIVE_REAL(item.strip()) for item in text.split(",")})


def read_study(out: Path, recipe: Path) -> tuple[dict, dict, dict]:
    """(study_setup.json, settings.json, data/split.json) of the study folder ``out``, run with
    the base recipe ``recipe``; DataError or ConfigError naming what is wrong."""
    if not out.is_dir():
        raise DataError(f"--study {out}: no such folder; give a `facebench study` output folder")
    setup = read_json(out / "study_setup.json")
    settings = read_json(out / "settings.json")
    split = read_json(out / "data" / "split.json")
    try:
        text = recipe.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise ConfigError(f"--recipe {recipe}: cannot read ({reason})") from None
    if text != setup.get("recipe"):
        raise ConfigError(
            f"--recipe {recipe}: the recipe is not the one the study ran with "
            f"({out / 'study_setup.json'}); give the study's recipe"
        )
    return setup, settings, split


def ladder_heads(names: str | None, settings: dict, source: Path):
    """The heads of ``--heads`` (default: every head of settings.json), each with chosen
    settings there."""
    keys = list(settings) if names is None else [n.strip() for n in names.split(",")]
    for key in keys:
        if key not in settings:
            raise ConfigError(
                f"--heads: no chosen settings for {key!r} in {source}; "
                f"heads there: {', '.join(settings)}"
            )
    return select_heads(",".join(keys))


def head_table(head, chosen: dict, rungs: list[tuple[float, float, list[dict]]]) -> str:
    """One head's markdown table; ``rungs``: (factor, epochs, results of its seeds) in order."""
    gamma = "" if chosen["scale"] is None else f", γ {chosen['scale']:g}"
    lines = [
        f"## {head.label} ({head.key}): lr {chosen['lr']:g}{gamma}",
        "",
        "| budget | epochs | seeds | val sample-wise acc | change | val uniform acc | change "
        f"| loss plateau | both moved < {BUDGET_TOLERANCE:g} |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    previous = None
    for factor, epochs, results in rungs:
        measured = {
            r["seed"]: r for r in results if all(r.get(m) is not None for m in BUDGET_METRICS)
        }
        means = [mean_interval([r[m] for r in measured.values()]) for m in BUDGET_METRICS]
        cells = [f"{factor:g}x", f"{epochs:g}", f"{len(measured)}/{len(results)}"]
        if previous is None:
            changes, rule = [None, None], "—"
        else:
            moved = budget_converged(previous, measured)
            changes = [moved["changes"][m] for m in BUDGET_METRICS]
            paired = len(moved["seeds"])
            rule = "yes" if moved[schema.CONVERGED] else "no" if paired >= 2 else "— (< 2 seeds)"
        for mean, change in zip(means, changes, strict=True):
            cells += ["—" if mean is None else f"{mean['mean']:.4f}", interval_text(change, 4)]
        plateaus = sum(bool(r.get(schema.CONVERGED)) for r in results)
        cells += [f"{plateaus}/{len(results)}", rule]
        lines.append("| " + " | ".join(cells) + " |")
        previous = measured
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Train the missing rungs, print and write the tables; one-line error and status 2 on a
    bad input, before anything is written."""
    parser = OneLineParser(
        prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--study", type=t.path, required=True, help="a `facebench study` --out")
    parser.add_argument(
        "--recipe", type=t.path, required=True, help="the study's base recipe (its --recipe)"
    )
    parser.add_argument("--heads", help="comma-separated head keys (default: all the study's)")
    parser.add_argument(
        "--factors", type=factors, default=[1.0, 2.0, 4.0, 8.0], help="budget multiples (1,2,4,8)"
    )
    parser.add_argument("--seeds", type=t.POSITIVE, default=1, help="first N tuning seeds (1)")
    parser.add_argument("--workers", type=t.WORKERS, default=2, help="runs side by side (2)")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # a bad option: one line printed, its status returned
        return int(exc.code or 0)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        return ladder(args)
    except FacebenchError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2


def ladder(args) -> int:
    """Check the study, train the missing rungs, print and write the tables."""
    out = Path(args.study)
    setup, settings, split = read_study(out, Path(args.recipe))
    heads = ladder_heads(args.heads, settings, out / "settings.json")
    check_output_dir(out, "--study")
    ladders = {
        head.key: [
            plan.config_runs(head, settings[head.key], args.seeds, factor)
            for factor in args.factors
        ]
        for head in heads
    }
    runs_dir = out / "runs"
    every = plan.unique([r for rungs in ladders.values() for runs in rungs for r in runs])
    missing = [r for r in every if not (runs_dir / r.key / RESULT_NAME).is_file()]
    log.info("%d runs: %d reused, %d to train", len(every), len(every) - len(missing), len(missing))
    measure = functools.partial(
        train_and_measure,
        data_dir=out / "data",
        runs_dir=runs_dir,
        base_recipe=Path(args.recipe),
        epochs=setup["epochs"],
        min_images=setup["min_images"],
    )
    threads = max(1, (os.cpu_count() or 1) // args.workers)
    map_runs(measure, missing, args.workers, threads)  # then every result is stored: read back
    tables = []
    for head in heads:
        rungs = []
        for factor, runs in zip(args.factors, ladders[head.key], strict=True):
            length = run_epochs(setup["epochs"], runs[0].train_count(split), setup["min_images"])
            rungs.append((factor, factor * length, [measure(r) for r in runs]))
        tables.append(head_table(head, settings[head.key], rungs))
    text = (
        f"# Budget ladder of {out}\n\nThe chosen settings on the tuning task (closed/fit -> "
        f"closed/val), tuning seeds {', '.join(map(str, plan.tuning_seeds(args.seeds)))}; "
        "change: from the previous budget, paired by seed (95 % t interval with 2+ seeds).\n\n"
        + "\n".join(tables)
    )
    print(text, end="")
    write_text(out / LADDER_FILE, text)
    print(f"wrote {out / LADDER_FILE}")
    return 0


if __name__ == "__main__":
    run(main)
