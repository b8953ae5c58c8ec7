"""The experiment runner of the quickstart, the study and `benchmarks/tune_synth.py`.

A run is trained, judged on its training-loss plateau (:mod:`facebench.train.convergence`) and
then measured by its caller. A resumable run keeps its result in one JSON file written
atomically: a finished run is never repeated, one cut short starts again from scratch. Runs go
to spawned worker processes with fixed intra-op threads; the workers die with the parent (the
kernel kills them when it dies, on Linux), and a SIGTERM or SIGINT to the parent terminates them
before it exits. Among tuning runs :func:`choose` is the one selection rule.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import shutil
import signal
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from facebench import schema
from facebench.fileio import read_json, write_json


@contextlib.contextmanager
def reproducible_threads(threads: int):
    """Fixed intra-op threads (torch, faiss) and deterministic torch algorithms, then restored."""
    import faiss
    import torch

    saved = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    saved_faiss = faiss.omp_get_max_threads()
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    faiss.omp_set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(saved[0])
        torch.use_deterministic_algorithms(saved[1])
        faiss.omp_set_num_threads(saved_faiss)


def _init_worker(parent: int, threads: int) -> None:
    """A worker of process ``parent``: dies with it, ``threads`` intra-op threads, warnings
    only."""
    import torch

    from facebench.procs import worker_init

    worker_init(parent)
    torch.set_num_threads(threads)
    logging.basicConfig(level=logging.WARNING)


def _stop_workers(signum: int, frame) -> None:
    """Signal handler: terminate every worker, then interrupt as Ctrl-C does (SIGINT and
    SIGTERM alike, as `facebench train` does): the parent's clean-up runs and `facebench` exits
    130 with one line."""
    for child in multiprocessing.active_children():
        child.kill()
    raise KeyboardInterrupt


@contextlib.contextmanager
def process_pool(workers: int, threads: int) -> Iterator[ProcessPoolExecutor]:
    """A pool of ``workers`` spawned processes on ``threads`` intra-op threads each, which die
    with this process; while it is open, SIGTERM and SIGINT terminate them (main thread only).
    Spawned, not forked: a fork after torch or OpenCV started threads hangs."""
    pool = ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_init_worker,
        initargs=(os.getpid(), threads),
    )
    signals = (signal.SIGTERM, signal.SIGINT)
    main = threading.current_thread() is threading.main_thread()
    previous = [signal.signal(s, _stop_workers) for s in signals] if main else []
    try:
        yield pool
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    else:
        pool.shutdown()
    finally:
        for s, handler in zip(signals, previous, strict=False):
            signal.signal(s, handler)


def map_runs(function: Callable, tasks: list, workers: int, threads: int) -> list:
    """``[function(t) for t in tasks]``, on up to ``workers`` :func:`process_pool` workers (in
    this process for one worker or one task)."""
    if workers <= 1 or len(tasks) <= 1:
        return [function(task) for task in tasks]
    with process_pool(min(workers, len(tasks)), threads) as pool:
        return list(pool.map(function, tasks))


def stored_result(result_path: Path, run_dir: Path, run: Callable[[], dict]) -> dict:
    """The result stored at ``result_path``; else ``run()`` (``run_dir`` cleared first: a run
    cut short starts again) stored there atomically."""
    if result_path.is_file():
        return read_json(result_path)
    if run_dir.exists():
        shutil.rmtree(run_dir)
    result = run()
    write_json(result_path, result)
    return result


def train_to_plateau(recipe, run_dir: Path, data_root: Path, overrides=(), device: str = "cpu"):
    """Train ``recipe`` (a file, or a Recipe without ``overrides``) into ``run_dir``, judge the
    plateau and write ``reports/training.json``; return the TrainResult and that report."""
    import torch

    from facebench.train import train
    from facebench.train.convergence import training_converged

    result = train(
        recipe, run_dir, data_root=data_root, device=device, overrides=overrides, progress=False
    )
    plateau = training_converged(result)
    report = {
        schema.KIND: schema.TRAINING,
        "recipe": str(recipe.name),
        "steps": result.steps,
        "steps_per_epoch": result.steps_per_epoch,
        "threads": torch.get_num_threads(),
        schema.EPOCH_LOSSES: plateau.pop(schema.EPOCH_LOSSES),
        schema.PLATEAU: plateau,
    }
    write_json(Path(run_dir) / "reports" / "training.json", report)
    return result, report


def choose(scores: list[float | None], converged: list[bool], require_plateau: bool = True) -> int:
    """The selection rule: the index of the highest score among the runs that converged (all
    runs where ``require_plateau`` is False, or where none converged); runs without a score
    are never chosen unless none has one (then the first). Ties go to the earlier run."""
    scored = [i for i, score in enumerate(scores) if score is not None]
    pool = [i for i in scored if converged[i] or not require_plateau] or scored
    return max(pool, key=lambda i: scores[i]) if pool else 0
