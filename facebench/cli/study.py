"""`facebench study`: the paper's claims judged with statistics, on an idx set or a face pack."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

DESCRIPTION = """\
Compare heads with an equal tuning budget, paired seeds, 95 % intervals and Holm-adjusted
verdicts on the paper's claims (docs/results.md, docs/results_faces.md). Phase 1 tunes every
head's grid (learning rate, and γ for normalized heads) on a validation split carved from the
training data; phase 2 trains every head at its chosen settings with several seeds, plus a γ
sweep; each run is judged for convergence and measured. Inputs:
  --idx DIR                    an MNIST-format idx set (closed set + held-out classes), or
  --train PACK --closed-test PACK (held-out images of the training identities, e.g. the
      test.rec `facebench data synth` writes) and open-set targets of other identities:
      --bin FILE (repeatable), --ijb ROOT, --open-pack PACK (all its pairs scored), or
  --preset synth-faces         synthetic faces made under --data when missing.
Writes OUT/table.md, claims.md, report.md (claims, forest plot, loss curves), settings.json,
study.json and figures, refreshed after every run; finished runs are reused when the command
is run again (resumable run by run). On GPUs: --device cuda --workers N runs N runs side by
side, run i on cuda:(i mod N).

  facebench study --preset synth-faces --out study_faces          # the face study (CPU)
  facebench study --idx /usr/share/datasets/fashion-mnist --out study_out
  facebench study --train casia --closed-test casia_heldout --bin lfw.bin --ijb IJB_C \\
      --recipe recipes/study/casia_r50.yaml --device cuda --workers 8 --out study_casia"""

DEFAULT_IDX = "/usr/share/datasets/fashion-mnist"
REPO = Path(__file__).resolve().parents[2]
RECIPES = {"idx": REPO / "recipes" / "study" / "fashion_mnist.yaml"}
PRESET_RECIPES = {
    ("synth-faces", "full"): REPO / "recipes" / "study" / "synth_faces.yaml",
    ("synth-faces", "quick"): REPO / "recipes" / "study" / "synth_faces_quick.yaml",
}
#: size options: (help, idx study only)
SIZE_OPTIONS = {
    "seeds": ("seeds of the table", False),
    "sweep_seeds": ("seeds per γ-sweep point", False),
    "epochs": ("training epochs of every run", False),
    "min_images": ("training images every run sees at least (more epochs on a small set)", False),
    "train_per_class": ("training images per class kept (idx default: 1,000)", True),
    "val_per_class": (
        "training images per class carved out for tuning (idx default: 1/6 of the smallest class)",
        False,
    ),
    "fit_per_class": (
        "images per class the tuning runs fit, from the rest (idx default: 1/3 of the smallest "
        "class)",
        False,
    ),
    "test_per_class": ("test images per class (default: all)", True),
    "pairs_per_half": ("genuine (= impostor) pairs per fold of the held-out bin", True),
    "grid_points": ("tuning configurations per head (default: the whole grid)", False),
    "tuning_seeds": ("seeds per tuning configuration (their mean decides)", False),
    "grid_extension": ("grid steps added beyond an edge the choice sits on, per axis", False),
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The study's options."""
    from facebench.cli import _types as t

    p.add_argument("--preset", choices=("synth-faces",), help="a ready study (see above)")
    p.add_argument(
        "--data",
        type=t.path,
        default="facebench-data/study-faces",
        help="--preset: folder of its data, made when missing (default: %(default)s)",
    )
    p.add_argument("--quick", action="store_true", help="tiny sizes for a smoke run")
    inputs = p.add_argument_group("inputs (without --preset)")
    inputs.add_argument("--idx", type=t.path, help=f"MNIST-format idx set (default {DEFAULT_IDX})")
    inputs.add_argument("--train", type=t.path, help="training pack (folder or .rec)")
    inputs.add_argument(
        "--closed-test", type=t.path, help="pack of held-out images of the training identities"
    )
    inputs.add_argument(
        "--bin",
        type=t.path,
        nargs="+",
        action="extend",
        default=[],
        help="open-set verification bins of other identities (repeatable)",
    )
    inputs.add_argument("--ijb", type=t.path, help="IJB-C layout root (meta/, loose_crop/)")
    inputs.add_argument(
        "--open-pack", type=t.path, help="pack of other identities, verified on all its pairs"
    )
    p.add_argument("--recipe", type=t.path, help="base recipe (default: the preset's or idx's)")
    p.add_argument(
        "--heads",
        help="comma-separated study keys or registered head names (default: the paper's set; "
        "--preset synth-faces: the face set)",
    )
    p.add_argument("--out", type=t.path, default="study_out", help="output folder")
    for name, (text, idx_only) in SIZE_OPTIONS.items():
        kind = t.POSITIVE_REAL if name == "epochs" else t.POSITIVE
        note = " (idx only)" if idx_only else ""
        p.add_argument(f"--{name.replace('_', '-')}", type=kind, help=text + note)
    p.add_argument(
        "--budget-check",
        action="store_true",
        help="also train every head's chosen settings at 2x the budget over the tuning seeds; "
        "a head whose validation sample-wise or uniform accuracy moves by 0.01 or more is "
        "not judged on that accuracy, nor on any other metric (budget_check.md)",
    )
    p.add_argument("--device", default="cpu", help="cpu, cuda (all --workers GPUs) or cuda:N")
    p.add_argument(
        "--workers", "--jobs", type=t.WORKERS, default=2, help="runs side by side (default 2)"
    )


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "study",
        help="the paper's claims with paired seeds and intervals (idx set or face pack)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(p)
    p.set_defaults(handler=run)


def study_inputs(args):
    """(inputs, sizes, base recipe, heads) from the options; ConfigError on a bad mix."""
    from facebench.errors import ConfigError
    from facebench.study.execute import SIZES
    from facebench.study.heads import FACE_HEADS, select_heads
    from facebench.study.inputs import FaceInputs, IdxInputs
    from facebench.study.presets import FACE_SIZES

    quick = "quick" if args.quick else "full"
    face_options = [o for o in ("train", "closed_test", "ijb", "open_pack") if getattr(args, o)]
    face_options += ["bin"] if args.bin else []
    given = [f"--{o.replace('_', '-')}" for o in face_options]
    if args.preset and (given or args.idx):
        raise ConfigError(f"--preset makes its own inputs; drop {(given or ['--idx'])[0]}")
    if args.idx and given:
        raise ConfigError(f"--idx is an idx study; drop {given[0]}")
    if args.preset:
        from facebench.study.presets import SYNTH_FACES, check_data_folder

        check_data_folder(Path(args.data))
        synth, open_pack = SYNTH_FACES[quick].make(Path(args.data))
        inputs = FaceInputs(
            str(synth),
            str(synth / "test.rec"),
            bins=(str(synth / "synth_val.bin"), str(synth / "synth_hard.bin")),
            open_pack=str(open_pack),
        )
        size, recipe = dict(FACE_SIZES[quick]), PRESET_RECIPES[args.preset, quick]
        heads = args.heads or ",".join(FACE_HEADS)
    elif given:
        if not args.train or not args.closed_test:
            raise ConfigError("a face study needs --train and --closed-test (see --help)")
        inputs = FaceInputs(args.train, args.closed_test, tuple(args.bin), args.ijb, args.open_pack)
        size, recipe = dict(FACE_SIZES[quick]), args.recipe
        heads = args.heads or ",".join(FACE_HEADS)
        if recipe is None:
            raise ConfigError("a face study needs --recipe (e.g. recipes/study/synth_faces.yaml)")
    else:
        inputs = IdxInputs(args.idx or DEFAULT_IDX)
        size, recipe, heads = dict(SIZES[quick]), RECIPES["idx"], args.heads
    for name, (_, idx_only) in SIZE_OPTIONS.items():
        value = getattr(args, name)
        if value is not None:
            if idx_only and not isinstance(inputs, IdxInputs):
                raise ConfigError(f"--{name.replace('_', '-')} is an idx-study option")
            size[name] = value
    recipe = Path(args.recipe or recipe)
    if not recipe.is_file():
        raise ConfigError(f"--recipe {recipe}: no such file")
    return inputs, size, recipe, select_heads(heads)


def run(args, command: str | None = None) -> int:
    from facebench.fileio import check_output_dir
    from facebench.study.execute import run_study

    logging.getLogger("facebench").setLevel(logging.INFO)
    check_output_dir(args.out)  # before any input is read or data made
    inputs, size, recipe, heads = study_inputs(args)
    command = command or " ".join(["facebench study", *sys.argv[2:]])
    summary = run_study(
        inputs,
        Path(args.out),
        size,
        heads,
        args.workers,
        recipe,
        command,
        args.budget_check,
        args.device,
    )
    print(Path(args.out, "table.md").read_text())
    print(
        f"{summary['runs_done']} of {summary['runs_planned']} phase-2 runs done (finished runs "
        f"are reused); this call took {summary['wall_seconds'] / 60:.1f} min; wrote table.md, "
        f"claims.md, settings.json, study.json and figures under {args.out}"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    """`facebench study` as a script (benchmarks/uniform_study.py): one-line errors, status 2."""
    from facebench.cli import OneLineParser
    from facebench.errors import FacebenchError

    parser = OneLineParser(
        prog="uniform_study.py",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # a bad option: one line printed, its status returned
        return int(exc.code or 0)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    command = " ".join(["benchmarks/uniform_study.py", *(sys.argv[1:] if argv is None else argv)])
    try:
        return run(args, command)
    except FacebenchError as exc:
        print(f"facebench: error: {exc}", file=sys.stderr)
        return 2
