"""Run the whole study: data, tuning phase, table and sweep phase, outputs refreshed per run."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

from facebench import schema
from facebench.errors import DataError
from facebench.fileio import check_output_dir, write_json, write_text
from facebench.runs import process_pool
from facebench.study import plan, report
from facebench.study.figures import write_readable
from facebench.study.runs import Run, train_and_measure

log = logging.getLogger(__name__)

#: Sizes: images per class kept for training (None: all), carved out of those for validation
#: and fitted by the tuning runs (None: scaled with the smallest class,
#: study.data.scaled_sizes), kept for testing (None: all), genuine
#: (= impostor) pairs per fold of the held-out bin, epochs, training images every run sees at
#: least (a small set trains for more epochs), seeds of the table, seeds per γ-sweep point, grid
#: points tuned per head (None: all). The full size keeps 1,000 training images per class so
#: that the runs converge by the budget rule (doubling the epochs moves validation accuracy by
#: < 0.01) within the study's 3 hours on 2 cores; 60,000 images for 5 epochs did not
#: (docs/results.md).
SIZES = {
    "full": {
        "train_per_class": 1000,
        "val_per_class": None,  # scaled: 1/6 of the smallest class (166 on Fashion-MNIST)
        "fit_per_class": None,  # scaled: 1/3 (333 on Fashion-MNIST)
        "test_per_class": None,
        "pairs_per_half": 300,
        "epochs": 30.0,
        "min_images": 60_000,
        "seeds": 5,
        "sweep_seeds": 3,
        "grid_points": None,
        "tuning_seeds": 2,
        "grid_extension": plan.EXTENSION_STEPS,
    },
    "quick": {
        "train_per_class": 60,
        "val_per_class": 10,
        "fit_per_class": 50,
        "test_per_class": 30,
        "pairs_per_half": 20,
        **plan.QUICK_SCHEDULE,
    },
}


def _log_result(done: int, total: int, result: dict) -> None:
    shown = (schema.SAMPLE_ACCURACY, schema.UNIFORM_ACCURACY, "verification_global_accuracy")
    values = ", ".join(f"{m}={result[m]:.4f}" for m in shown if result.get(m) is not None)
    state = schema.CONVERGED if result.get(schema.CONVERGED) else "NOT converged"
    if "error" in result:
        values = f"FAILED: {result['error']}"
    log.info(
        "[%d/%d] %s: train %.0fs, %s, %s",
        done,
        total,
        result["run"],
        result["train_seconds"],
        state,
        values,
    )


def execute(runs: list[Run], pool, context: dict, on_result) -> dict[str, dict]:
    """Train and measure ``runs`` on the pool; ``on_result(results)`` after each, in order.
    Run i goes to ``devices[i mod len(devices)]``: on GPUs, one run per GPU side by side when
    the pool has one worker per GPU."""
    devices, shared = devices_and_context(context)
    futures = [
        (run, pool.submit(train_and_measure, run, **shared, device=devices[i % len(devices)]))
        for i, run in enumerate(runs)
    ]
    results = {}
    for done, (run, future) in enumerate(futures, 1):
        results[run.key] = future.result()
        _log_result(done, len(runs), results[run.key])
        on_result(results)
    return results


def write_outputs(
    out: Path,
    summary: dict,
    heads,
    table: list[Run],
    runs: list[Run],
    results: dict,
    unjudged: dict | None = None,
    impostors: int | None = None,
    family: tuple = (report.METRICS, report.CLAIMS),
    open_set: str = report.OPEN_SET_PARTITIONS,
) -> None:
    """study.json, table.md, claims.md and gamma_sweep.png from the runs finished so far: the
    table and the claims from the ``table`` runs (each head at its chosen settings), the γ
    figure from all ``runs`` (the sweep's other γ too); ``impostors``: impostor pairs per bin,
    which decide the declared TAR tests; ``family``: the (metrics, claims) of the inputs;
    ``open_set``: how their open-set intervals are made."""
    metrics, claim_list = family
    labels = {h.key: h.label for h in heads}
    rows = report.summarize(heads, results, table, metrics)
    claims = report.judge_claims(heads, results, table, unjudged, impostors, metrics, claim_list)
    thresholds = report.judge_thresholds(heads, results, table, unjudged)
    points = report.sweep_points(heads, results, runs)
    summary.update(
        table=rows,
        claims=claims,
        learned_thresholds=thresholds,
        gamma_sweep={"scales": list(report.SWEEP_SCALES), **points},
        runs_done=len(results),
        runs_planned=len(runs),
        wall_seconds=time.perf_counter() - summary.pop("_started", time.perf_counter()),
        runs=results,
    )
    write_json(out / "study.json", summary)
    table_md = report.table_markdown(rows, summary["settings"], metrics)
    claims_md = report.claims_markdown(claims, thresholds, labels, open_set)
    write_text(out / "table.md", table_md)
    write_text(out / "claims.md", claims_md)
    write_readable(out, table_md, claims_md, claims, labels, heads, table, results)
    if points:
        report.plot_sweep(points, labels, out / "gamma_sweep.png")


def study_devices(device: str, jobs: int) -> tuple[str, ...]:
    """The devices runs take in turn: ``device`` itself, or cuda:0 .. cuda:jobs-1 for "cuda"."""
    return tuple(f"cuda:{i}" for i in range(jobs)) if device == "cuda" else (device,)


def devices_and_context(context: dict) -> tuple[tuple[str, ...], dict]:
    """(the devices, the rest of the run context)."""
    return context["devices"], {k: v for k, v in context.items() if k != "devices"}


def write_tuning(out: Path, heads, runs: list[Run], results: dict) -> None:
    """tuning.md: the tuning runs finished so far."""
    write_text(out / "tuning.md", report.tuning_markdown(heads, runs, results))


def run_study(
    inputs,
    out: Path,
    size: dict,
    heads,
    jobs: int,
    base_recipe: Path,
    command: str,
    budget_check: bool = False,
    device: str = "cpu",
) -> dict:
    """The whole study of ``inputs`` (:mod:`facebench.study.inputs`) under ``out`` (resumable:
    finished runs are reused); returns study.json. ``device``: cpu or cuda (``jobs`` runs side
    by side, one per GPU).
    ``budget_check``: also train the chosen settings at 2x the budget; heads that fail the
    budget rule are not judged (budget_check.md)."""
    heads = inputs.study_heads(heads)
    size = inputs.check(size, base_recipe, heads)  # before anything is created under out
    check_output_dir(out)
    setup = {
        "epochs": size["epochs"],
        "min_images": size["min_images"],
        "recipe": base_recipe.read_text(),
    }
    stamp = out / "study_setup.json"
    if stamp.is_file() and json.loads(stamp.read_text()) != setup:
        raise DataError(f"{out}: holds runs of another set-up ({stamp}); use a new --out")
    out.mkdir(parents=True, exist_ok=True)
    write_json(stamp, setup)
    started = time.perf_counter()
    data_dir, runs_dir = out / "data", out / "runs"
    split = inputs.prepare(data_dir, size)
    context = {
        "data_dir": data_dir,
        "runs_dir": runs_dir,
        "base_recipe": base_recipe,
        "epochs": size["epochs"],
        "min_images": size["min_images"],
        "devices": study_devices(device, jobs),
    }
    summary = {"command": command, "size": size, "jobs": jobs, "split": split}
    impostors, family = inputs.impostors(size), inputs.family(size)
    judging = (impostors, family, inputs.open_set)  # what decides the declared tests, how open
    threads = max(1, (os.cpu_count() or 1) // jobs)
    os.environ.setdefault("TQDM_DISABLE", "1")
    with process_pool(jobs, threads) as pool:
        points, seeds = size["grid_points"], size["tuning_seeds"]
        tuning = plan.tuning_runs(heads, points, seeds) + plan.sweep_tuning_runs(heads, seeds)
        tuning = plan.unique(tuning)
        tuned: dict = {}
        missing = tuning
        while missing:  # the grid grows until every choice is interior or at the limit
            log.info("phase 1: %d tuning runs", len(missing))
            tuned.update(
                execute(
                    missing,
                    pool,
                    context,
                    lambda results: write_tuning(out, heads, tuning, {**tuned, **results}),
                )
            )
            missing = plan.missing_tuning_runs(heads, tuned, points, seeds, size["grid_extension"])
            tuning.extend(missing)
        settings = plan.select_settings(heads, tuned, points, seeds, size["grid_extension"])
        unjudged: dict = {}  # head key -> the metrics its budget check failed
        if budget_check:
            checks = [
                r for r in plan.budget_check_runs(heads, settings, seeds) if r.key not in tuned
            ]
            log.info("budget check: %d runs at 2x the budget", len(checks))
            tuned.update(execute(checks, pool, context, lambda results: None))
            budgets = report.judge_budgets(heads, settings, tuned, seeds)
            summary["budget_check"] = budgets
            write_json(out / "budget_check.json", budgets)
            labels = {h.key: h.label for h in heads}
            effects = report.budget_effects(heads, settings, tuned, seeds)
            write_text(out / "budget_check.md", report.budget_markdown(budgets, labels, effects))
            unjudged = {k: frozenset(b["failed"]) for k, b in budgets.items() if b["failed"]}
        summary["settings"] = settings
        summary["tuning_runs"] = tuned
        write_json(out / "settings.json", settings)
        table = plan.table_runs(heads, settings, size["seeds"])
        runs = plan.unique(table + plan.sweep_runs(heads, settings, size["sweep_seeds"]))
        log.info("phase 2: %d table and sweep runs", len(runs))

        def refresh(results: dict) -> None:
            summary["_started"] = started
            write_outputs(out, summary, heads, table, runs, results, unjudged, *judging)

        results = execute(runs, pool, context, refresh)
    every = [*tuned.values(), *results.values()]
    summary["train_seconds_total"] = sum(r["train_seconds"] for r in every)
    summary["train_cpu_seconds_total"] = sum(r.get("train_cpu_seconds", 0.0) for r in every)
    summary["_started"] = started
    write_outputs(out, summary, heads, table, runs, results, unjudged, *judging)
    return summary
