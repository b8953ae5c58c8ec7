"""Which runs the study makes, in which order, and the tuning rule that links its two phases.

Phase 1 (tuning): every head, every configuration of its grid, one seed (:data:`TUNING_SEED`),
trained on closed/fit and scored on closed/val (carved from the training split, never the test
split). Rule: the configuration with the highest validation sample-wise accuracy among runs that
converged (ties: the first in grid order); if none converged, the best of the others, marked.
Phase 2: the table (every head, seeds 0..n-1, closed and open set, at its chosen settings; seed
by seed so a partial study holds whole pairs) and the γ sweep (at the chosen learning rate).
"""

from __future__ import annotations

from facebench.study.heads import SWEEP_HEADS, SWEEP_SCALES, StudyHead
from facebench.study.runs import Run

TUNING_SEED = 1000


def grid(head: StudyHead, points: int | None) -> list[dict]:
    """The head's tuning grid, cut to its first ``points`` configurations (None: all)."""
    return head.grid()[:points]


def tuning_runs(heads: tuple[StudyHead, ...], points: int | None = None) -> list[Run]:
    """Every head's grid, one run per configuration."""
    return [
        Run(head, "tune", TUNING_SEED, point["lr"], point["scale"])
        for head in heads
        for point in grid(head, points)
    ]


def select_settings(
    heads: tuple[StudyHead, ...], results: dict[str, dict], points: int | None = None
) -> dict[str, dict]:
    """Per head key: the chosen ``lr`` and ``scale`` with its validation score, by the rule."""
    chosen = {}
    for head in heads:
        scored = []
        for point in grid(head, points):
            result = results[Run(head, "tune", TUNING_SEED, point["lr"], point["scale"]).key]
            accuracy = result.get("sample_accuracy")
            scored.append((point, accuracy, bool(result.get("converged"))))
        usable = [s for s in scored if s[1] is not None]
        pool = [s for s in usable if s[2]] or usable
        if pool:
            point, accuracy, converged = max(pool, key=lambda s: s[1])  # first of equals
        else:
            (point, accuracy, converged) = scored[0]
        chosen[head.key] = {
            **point,
            "validation_sample_accuracy": accuracy,
            "tuned_on_converged_run": converged,
            "grid": [{**p, "validation_sample_accuracy": a, "converged": c} for p, a, c in scored],
        }
    return chosen


def table_runs(heads: tuple[StudyHead, ...], settings: dict, seeds: int) -> list[Run]:
    """Every head's closed- and open-set runs (those of its tasks) at its chosen settings, seed
    by seed."""
    return [
        Run(head, task, seed, settings[head.key]["lr"], settings[head.key]["scale"])
        for seed in range(seeds)
        for head in heads
        for task in head.tasks
    ]


def sweep_runs(heads: tuple[StudyHead, ...], settings: dict, seeds: int) -> list[Run]:
    """The γ sweep's closed-set runs of :data:`SWEEP_HEADS` (those studied), seed by seed."""
    swept = [h for h in heads if h.key in SWEEP_HEADS]
    return [
        Run(head, "closed", seed, settings[head.key]["lr"], gamma)
        for seed in range(seeds)
        for gamma in SWEEP_SCALES
        for head in swept
    ]


def unique(runs: list[Run]) -> list[Run]:
    """``runs`` without repeats (a sweep point at the chosen γ is a table run), order kept."""
    seen: set[str] = set()
    return [r for r in runs if not (r.key in seen or seen.add(r.key))]
