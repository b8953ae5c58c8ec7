"""The paper's claims on Fashion-MNIST (or any MNIST-format idx set), decided with statistics.

Phase 1 tunes every head with the same budget (its grid of learning rate, and γ for normalized
heads) on a validation split carved from the training data. Phase 2 trains every head at its
chosen settings with several seeds on the closed set (all classes) and on the open-set split
(classes 0-5), plus a γ sweep; each run is judged for convergence (facebench.train.convergence)
and measured: sample-wise, class-wise and uniform accuracy, t* beside the learned threshold,
feature geometry, and verification on pairs of the held-out classes. Claims are decided from 95 %
intervals of paired (same-seed) differences. The logic lives in facebench.study.

Writes OUT/table.md, OUT/claims.md, OUT/settings.json, OUT/study.json and OUT/gamma_sweep.png,
refreshed after every run; finished runs are reused when the command is run again.

  python benchmarks/uniform_study.py --out study_out            # the full study
  python benchmarks/uniform_study.py --quick --out /tmp/smoke   # CI smoke
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BASE_RECIPE = REPO / "recipes" / "fashion_mnist" / "base.yaml"
DEFAULT_IDX = "/usr/share/datasets/fashion-mnist"
SIZE_OPTIONS = {
    "seeds": "seeds of the table",
    "sweep_seeds": "seeds per γ-sweep point",
    "epochs": "training epochs of every run",
    "min_images": "training images every run sees at least (more epochs on a small set)",
    "train_per_class": "training images per class (default: all)",
    "val_per_class": "training images per class carved out for tuning (default: 1/12 of the "
    "smallest class)",
    "fit_per_class": "images per class the tuning runs fit, from the rest (default: 1/3 of the "
    "smallest class)",
    "test_per_class": "test images per class (default: all)",
    "pairs_per_half": "genuine (= impostor) pairs per fold of the held-out bin",
    "grid_points": "tuning configurations per head (default: the whole grid)",
    "tuning_seeds": "seeds per tuning configuration (their mean decides)",
    "grid_extension": "grid steps added beyond an edge the choice sits on, per axis and side",
}


def build_parser() -> argparse.ArgumentParser:
    """The study's command line."""
    from facebench.study.execute import SIZES

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes for a CI smoke run")
    for name, text in SIZE_OPTIONS.items():
        full, quick = SIZES["full"][name], SIZES["quick"][name]
        kind = float if name == "epochs" else int
        parser.add_argument(
            f"--{name.replace('_', '-')}", type=kind, help=f"{text} ({full}; --quick: {quick})"
        )
    parser.add_argument(
        "--heads",
        help="comma-separated study keys or registered head names (default: the paper's set)",
    )
    parser.add_argument("--out", default="study_out", help="output directory (default study_out)")
    parser.add_argument("--idx", default=DEFAULT_IDX, help="MNIST-format idx set directory")
    parser.add_argument(
        "--budget-check",
        action="store_true",
        help="also train every head's chosen settings at 2x the budget over the tuning seeds; "
        "heads whose validation accuracy moves by 0.01 or more are not judged (budget_check.md)",
    )
    parser.add_argument("--jobs", type=int, default=2, help="runs in parallel (default 2)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the study; one-line error and status 2 on bad input."""
    from facebench.errors import FacebenchError
    from facebench.study.execute import SIZES, run_study
    from facebench.study.heads import select_heads

    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    size = dict(SIZES["quick" if args.quick else "full"])
    for key in SIZE_OPTIONS:
        if getattr(args, key) is not None:
            size[key] = getattr(args, key)
    command = " ".join(["benchmarks/uniform_study.py", *(sys.argv[1:] if argv is None else argv)])
    try:
        bad = [k for k, v in size.items() if v is not None and v <= 0]
        if bad or args.jobs <= 0:
            option = f"--{(bad or ['jobs'])[0].replace('_', '-')}"
            raise FacebenchError(f"{option} must be positive")
        heads = select_heads(args.heads)
        summary = run_study(
            args.idx,
            Path(args.out),
            size,
            heads,
            args.jobs,
            BASE_RECIPE,
            command,
            args.budget_check,
        )
    except FacebenchError as exc:
        print(f"facebench: error: {exc}", file=sys.stderr)
        return 2
    print(Path(args.out, "table.md").read_text())
    print(
        f"{summary['runs_done']} runs in {summary['wall_seconds'] / 60:.1f} min; wrote "
        f"table.md, claims.md, settings.json, study.json, gamma_sweep.png under {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
