"""One study run: train a head with a seed and settings, judge convergence, measure; resumable.

A run's result is ``RUNS/<key>/study_result.json`` (:func:`facebench.runs.stored_result`): once
written, the run is never repeated. A run cut short before that is started again from scratch.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

from facebench import schema
from facebench.fileio import read_json
from facebench.runs import stored_result, train_to_plateau
from facebench.study.heads import StudyHead

#: task -> (training pack, evaluation target), relative to the data folder ({p}: the run's
#: open-set partition).
TASKS = {
    "tune": ("closed/fit", "closed/val"),
    "closed": ("closed/train", "closed/test"),
    "open": ("open/p{p}/train", "open/p{p}/heldout.bin"),
}
#: task -> its training pack's image count in split.json's counts (the partition's for open).
TRAIN_COUNTS = {"tune": "closed_fit", "closed": "closed_train", "open": "open_train"}
RESULT_NAME = "study_result.json"
#: The learning rate falls tenfold at these fractions of training: lr/10 from 50 %, lr/100 from
#: 60 %, lr/1000 for the last 20 % (one epoch of five), where the loss can settle on a plateau.
LR_DROPS = (0.5, 0.6, 0.8)


@dataclass(frozen=True)
class Run:
    """A head trained on a task with a seed, learning rate and (normalized heads) scale γ."""

    head: StudyHead
    task: str
    seed: int
    lr: float
    scale: float | None
    budget: float = 1.0  # times the study's epochs, same schedule shape (the 2x budget check)
    partition: int | None = None  # the open-set class partition (open runs only)

    def __post_init__(self) -> None:
        if (self.partition is None) == (self.task == "open"):
            raise ValueError(f"{self.task} run: an open-set run, and only one, has a partition")

    @property
    def key(self) -> str:
        """Folder name from head, task, settings, seed and partition:
        ``bce_u_norm-closed-lr0.1-g64-s2``, ``bce_u-open-lr0.1-s2-p2``."""
        gamma = "" if self.scale is None else f"-g{self.scale:g}"
        budget = "" if self.budget == 1.0 else f"-x{self.budget:g}"
        part = "" if self.partition is None else f"-p{self.partition}"
        return f"{self.head.key}-{self.task}-lr{self.lr:g}{gamma}-s{self.seed}{part}{budget}"

    def paths(self) -> tuple[str, str]:
        """The training pack and evaluation target, relative to the data folder."""
        return tuple(path.format(p=self.partition) for path in TASKS[self.task])

    def train_count(self, split: dict) -> int:
        """Its training pack's image count, from the data folder's split.json."""
        counts = split["counts"]
        if self.task == "open":
            counts = split["open_partitions"][self.partition]["counts"]
        return counts[TRAIN_COUNTS[self.task]]

    def describe(self) -> dict:
        """The run's identity as stored in its result."""
        return {
            "run": self.key,
            "head": self.head.key,
            "task": self.task,
            "seed": self.seed,
            "lr": self.lr,
            "scale": self.scale,
            "budget": self.budget,
            "partition": self.partition,
        }


def run_epochs(epochs: float, train_images: int, min_images: int) -> float:
    """``epochs``, or more where that many epochs of ``train_images`` fall short of
    ``min_images`` (rounded up to whole epochs, so the convergence rule compares whole ones)."""
    if epochs * train_images >= min_images:
        return epochs
    return float(math.ceil(min_images / train_images))


def run_recipe(run: Run, base_recipe: Path, epochs: float):
    """The run's recipe: the study's base recipe (the set-up every head shares), then the run's
    head, settings, seed, epochs, LR milestones and training pack. ``epochs`` must already
    include :func:`run_epochs`."""
    from facebench.config import load_recipe

    milestones = ",".join(f"{epochs * fraction:g}" for fraction in LR_DROPS)
    overrides = run.head.overrides(run.lr, run.scale)
    overrides += [
        f"train.seed={run.seed}",
        f"train.epochs={epochs}",
        f"schedule.milestones=[{milestones}]",
        f"data.train={run.paths()[0]}",
    ]
    return load_recipe(base_recipe, overrides)


def train_and_measure(
    run: Run,
    data_dir: Path,
    runs_dir: Path,
    base_recipe: Path,
    epochs: float,
    min_images: int,
    device: str = "cpu",
) -> dict:
    """Train ``run`` (unless its result exists) for ``epochs`` or at least ``min_images``
    images on ``device``, judge convergence, measure; return the result."""
    run_dir = runs_dir / run.key
    return stored_result(
        run_dir / RESULT_NAME,
        run_dir,
        lambda: _train_and_measure(run, data_dir, run_dir, base_recipe, epochs, min_images, device),
    )


def _train_and_measure(
    run: Run,
    data_dir: Path,
    run_dir: Path,
    base_recipe: Path,
    epochs: float,
    min_images: int,
    device: str,
) -> dict:
    from facebench.errors import FacebenchError
    from facebench.study.inputs import measure_targets
    from facebench.study.measure import measure_closed, measure_open

    start, cpu_start = time.perf_counter(), time.process_time()
    train_images = run.train_count(read_json(data_dir / "split.json"))
    run_length = run.budget * run_epochs(epochs, train_images, min_images)
    recipe = run_recipe(run, base_recipe, run_length)
    result = run.describe()
    try:
        trained, training = train_to_plateau(recipe, run_dir, data_dir, device=device)
    except FacebenchError as exc:  # e.g. a diverged loss: recorded, never judged
        result.update(error=str(exc), converged=False, train_seconds=time.perf_counter() - start)
        return result
    seconds = time.perf_counter() - start
    cpu_seconds = time.process_time() - cpu_start
    convergence = {**training[schema.PLATEAU], schema.EPOCH_LOSSES: training[schema.EPOCH_LOSSES]}
    result.update(
        converged=convergence[schema.CONVERGED],
        convergence=convergence,
        train_seconds=seconds,
        train_images_per_s=trained.steps * recipe.train.batch_size / seconds,
        # CPU time of this one-thread run: its cost on an idle core, whatever else ran beside it
        train_cpu_seconds=cpu_seconds,
        train_images_per_cpu_s=trained.steps * recipe.train.batch_size / cpu_seconds,
    )
    measured = time.perf_counter()
    target = data_dir / run.paths()[1]
    if run.task == "open":
        result.update(measure_open(trained.model_path, target, run_dir / "verify", run.partition))
    else:
        result.update(measure_closed(trained.model_path, target, geometry=run.task == "closed"))
    if run.task == "closed":  # a face study's open targets, measured with the closed-set model
        result.update(measure_targets(trained.model_path, data_dir, run_dir / "verify", device))
    result["eval_seconds"] = time.perf_counter() - measured
    return result
