"""`facebench train RECIPE`: train a backbone + head from a recipe (one process or torchrun)."""

from __future__ import annotations

import argparse

DESCRIPTION = """\
Train from a recipe (YAML; see recipes/ and docs/training.md). Data paths in the recipe are
relative to the data root: --data DIR, else $FACEBENCH_DATA, else the current directory.
Multi-GPU / multi-node: torchrun --nproc_per_node=N -m facebench train RECIPE ...
The run directory gets recipe.yaml, log.jsonl, tb/, checkpoints/, reports/ and model.pt."""


def register(subparsers) -> None:
    from facebench.cli import _types as t
    from facebench.cli._options import add_progress_option

    parser = subparsers.add_parser(
        "train",
        help="train a model from a recipe",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("recipe", help="recipe YAML file, e.g. recipes/synth/bce_u.yaml")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a recipe key (YAML value), e.g. --set optim.lr=0.05; repeatable",
    )
    parser.add_argument("--data", type=t.path, help="data root for the recipe's relative paths")
    parser.add_argument("--out", type=t.path, help="run directory (default: runs/<recipe name>)")
    parser.add_argument(
        "--resume", action="store_true", help="continue from the newest checkpoint in --out"
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    add_progress_option(parser)
    parser.set_defaults(handler=run)


def run(args) -> int:
    from pathlib import Path

    from facebench.config import load_recipe
    from facebench.fileio import check_output_dir
    from facebench.procs import sigterm_as_interrupt
    from facebench.train import train

    recipe = load_recipe(args.recipe, args.overrides)
    out = args.out or str(Path("runs") / (recipe.name or Path(args.recipe).stem))
    check_output_dir(out)
    with sigterm_as_interrupt():  # a terminated run cleans up as an interrupted one
        result = train(
            recipe,
            out,
            data_root=args.data,
            device=args.device,
            resume=args.resume,
            progress=not args.no_progress,
            recipe_file=args.recipe,
        )
    if result.model_path is not None:
        print(f"model: {result.model_path}")
    return 0
