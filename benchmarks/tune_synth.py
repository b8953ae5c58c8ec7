"""Choose the `recipes/synth/` settings of each quickstart head by one procedure, equal budget.

Every head gets the same number of training runs on the quickstart's own training pack, each of
``--epochs`` epochs (default: the quickstart's, `recipes/synth/base.yaml`, with its schedule;
the run recorded in docs/training.md used them), each run scored on `synth_tune.bin`: an
open-set bin of 100 synthetic identities that neither the training pack nor the bins the
quickstart reports (`synth_val`, `synth_hard`, the identification gallery) contain.

Grid (4 runs per head): normalized heads (bce_u, arcface, cosface, and any other given with
`--heads`) learning rate x scale gamma; margins stay at the paper's values
(`recipes/losses/`); SoftMax has no scale, so its 4 runs are 4 learning rates.
Selection rule (the study's): the highest 10-fold accuracy on `synth_tune.bin` among the runs
that ended on a training-loss plateau (facebench.train.convergence); if none did, among all
runs, and the choice is marked unconverged. Ties go to the earlier grid point. Runs shortened
with ``--epochs`` are not expected to plateau (the quickstart's full runs are checked instead),
so for them the rule is the highest accuracy over all runs.

Runs are resumable (one result file per run under --out) and train on one thread each,
``--workers`` at once, so the scores do not depend on the machine's load.

    python benchmarks/tune_synth.py --data facebench-data --out tune-synth
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from facebench import schema
from facebench.cli import run
from facebench.data.synth.dataset import SynthConfig, ensure_synthetic_data, write_open_set_bin
from facebench.fileio import write_json
from facebench.quickstart import (
    HEADS,
    SIZES,
    THREADS_PER_HEAD,
    default_recipes_dir,
)
from facebench.runs import choose, map_runs, reproducible_threads, stored_result, train_to_plateau
from facebench.study.runs import LR_DROPS

LEARNING_RATES = (0.001, 0.003)
SCALES = (8.0, 16.0)
#: SoftMax (linear logits) has no scale: the same number of runs spent on learning rates.
SOFTMAX_LEARNING_RATES = (0.0005, 0.001, 0.003, 0.006)
TUNE_STREAM = 4  # image numbers 4000+: no other synthetic bin or split uses them
TUNE_BIN = "synth_tune.bin"


def grid(head: str) -> list[dict]:
    """The settings tried for ``head``: recipe overrides as a dict."""
    if head == "softmax":
        return [{"optim.lr": lr} for lr in SOFTMAX_LEARNING_RATES]
    return [{"optim.lr": lr, "head.params.scale": s} for lr in LEARNING_RATES for s in SCALES]


def run_key(head: str, setting: dict) -> str:
    return head + "".join(f"_{k.rsplit('.', 1)[-1]}{v:g}" for k, v in setting.items())


def tune_bin(out: Path, data: Path, cfg: SynthConfig) -> Path:
    """``out/synth_tune.bin``: the quickstart's synthetic ``cfg``, the next identities."""
    path = out / TUNE_BIN
    if not path.exists():
        first = cfg.identities + cfg.val_identities
        tmp = out / f".{TUNE_BIN}.partial"
        write_open_set_bin(cfg, str(tmp), cfg.difficulty, TUNE_STREAM, first_identity=first)
        tmp.replace(path)
    return path


def one_run(task: tuple) -> dict:
    """One grid point's result file (trained in a worker process unless it exists)."""
    run_dir = task[2]
    return stored_result(run_dir.parent / f"{run_dir.name}.json", run_dir, lambda: _train(task))


def _train(task: tuple) -> dict:
    head, setting, run_dir, data, bin_path, epochs, size_overrides = task
    started, cpu = time.perf_counter(), time.process_time()
    overrides = [f"data.train={data.name}", *size_overrides, f"eval.bins=[{bin_path}]"]
    if epochs:  # shortened: the same LR tail, at the same fractions of training
        milestones = ",".join(f"{epochs * fraction:g}" for fraction in LR_DROPS)
        overrides += [f"train.epochs={epochs}", f"schedule.milestones=[{milestones}]"]
    overrides += [f"{k}={v}" for k, v in setting.items()]
    recipe = default_recipes_dir() / "synth" / f"{head}.yaml"
    with reproducible_threads(THREADS_PER_HEAD):
        trained, training = train_to_plateau(recipe, run_dir, data.parent, overrides)
    plateau = training[schema.PLATEAU]
    return {
        "head": head,
        "setting": setting,
        "epochs": len(training[schema.EPOCH_LOSSES]),
        **trained.metrics[bin_path.stem],  # the verification headline (schema.headline)
        schema.CONVERGED: plateau[schema.CONVERGED],
        "last_epoch_change": plateau[schema.RELATIVE_CHANGE],
        schema.EPOCH_LOSSES: training[schema.EPOCH_LOSSES],
        "seconds": round(time.perf_counter() - started, 1),
        "cpu_seconds": round(time.process_time() - cpu, 1),
    }


def choose_setting(results: list[dict], require_plateau: bool = True) -> dict:
    """The selection rule of the module docstring (:func:`facebench.runs.choose`)."""
    best = results[
        choose(
            [r[schema.ACCURACY_10FOLD_MEAN] for r in results],
            [r[schema.CONVERGED] for r in results],
            require_plateau,
        )
    ]
    return {**best, "chosen_among_converged": bool(best[schema.CONVERGED])}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="facebench-data", help="the quickstart's data root")
    parser.add_argument("--out", default="tune-synth", help="results folder (resumed if present)")
    parser.add_argument("--heads", nargs="+", default=list(HEADS))
    parser.add_argument("--workers", type=int, default=2, help="runs at once, one thread each")
    parser.add_argument("--epochs", type=int, help="epochs per run (default: the recipes')")
    parser.add_argument(
        "--size", choices=sorted(SIZES), default="default", help="the quickstart size tuned for"
    )
    args = parser.parse_args(argv)

    started = time.perf_counter()
    out = Path(args.out).absolute()
    out.mkdir(parents=True, exist_ok=True)
    size = SIZES[args.size]
    data = ensure_synthetic_data(Path(args.data).absolute() / size.folder, size.synth)
    bin_path = tune_bin(out, data, size.synth)
    settings = {head: grid(head) for head in args.heads}
    # round-robin over heads, so an interrupted tuning has spent the same budget on each
    tasks = [
        (
            head,
            s[i],
            out / "runs" / run_key(head, s[i]),
            data,
            bin_path,
            args.epochs,
            size.overrides,
        )
        for i in range(max(len(g) for g in settings.values()))
        for head, s in settings.items()
        if i < len(s)
    ]
    results = map_runs(one_run, tasks, args.workers, THREADS_PER_HEAD)
    shortened = args.epochs is not None
    chosen = {
        head: choose_setting([r for r in results if r["head"] == head], not shortened)
        for head in args.heads
    }
    summary = {
        "grid": {"learning_rates": LEARNING_RATES, "scales": SCALES},
        "epochs": args.epochs,
        "softmax_learning_rates": SOFTMAX_LEARNING_RATES,
        schema.RULE: "highest 10-fold accuracy on synth_tune.bin"
        + (" (shortened runs: all of them)" if shortened else " among runs on a loss plateau"),
        "runs": results,
        "chosen": chosen,
        "cpu_seconds_all_runs": round(sum(r["cpu_seconds"] for r in results), 1),
        "seconds_this_call": round(time.perf_counter() - started, 1),
    }
    write_json(str(out / "tuning.json"), summary)
    print("| head | setting | synth_tune 10-fold | global | plateau (last change) | CPU s |")
    print("|---|---|---|---|---|---|")
    for r in results:
        mark = " **chosen**" if chosen[r["head"]]["setting"] == r["setting"] else ""
        change = r["last_epoch_change"]
        mean, std = r[schema.ACCURACY_10FOLD_MEAN], r[schema.ACCURACY_10FOLD_STD]
        setting = ", ".join(f"{k.rsplit('.', 1)[-1]} {v:g}" for k, v in r["setting"].items())
        print(
            f"| {r['head']} | {setting}{mark} | {100 * mean:.2f} ± {100 * std:.2f} | "
            f"{100 * r[schema.GLOBAL_ACCURACY]:.2f} | "
            f"{'yes' if r[schema.CONVERGED] else 'no'} ({100 * (change or 0):+.2f}%) | "
            f"{r['cpu_seconds']:.0f} |"
        )
    print(f"tuning: {out / 'tuning.json'} ({summary['seconds_this_call']:.0f} s this call)")
    return 0


if __name__ == "__main__":
    run(main)
