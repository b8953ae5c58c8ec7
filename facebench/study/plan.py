"""Which runs the study makes, in which order, and the tuning rule that links its two phases.

Phase 1 (tuning): every head, every configuration of its grid, over the tuning seeds
(:func:`tuning_seeds`), trained on closed/fit and scored on closed/val (carved from the training
split, never the test split); a choice on the grid's edge adds the neighbour beyond it
(:data:`EXTENSION_STEPS`). Rule: the configuration with the highest mean validation sample-wise
accuracy among those whose runs converged (ties: the first in grid order); if none converged,
the best of the others, marked (:func:`facebench.runs.choose`, the quickstart's tuning rule
too). The γ sweep's heads are also tuned at every γ of the sweep (:func:`sweep_tuning_runs`).
The budget check (optional): the chosen settings at :data:`BUDGET_FACTOR` times the budget.
Phase 2: the table (every head, seeds 0..n-1, closed and open set, at its chosen settings; seed
by seed so a partial study holds whole pairs) and the γ sweep (at the lr chosen for each γ).
The open-set run of seed i trains and is verified on class partition i
(:func:`facebench.study.data.open_partitions`): n seeds, n partitions, n open runs per head.
"""

from __future__ import annotations

from facebench import schema
from facebench.runs import choose
from facebench.study.heads import NORMALIZED_LRS, SWEEP_HEADS, SWEEP_SCALES, StudyHead
from facebench.study.runs import Run

TUNING_SEED = 1000
#: A chosen value on the grid's edge adds its neighbour beyond (x2 or /2) up to this many steps
#: past the original grid, per axis and side; an edge left after that is reported with its trend.
EXTENSION_STEPS = 2
AXIS_FACTOR = 2.0
#: The budget check: the chosen settings at B and BUDGET_FACTOR x B (same schedule shape).
BUDGET_FACTOR = 2.0


#: The smoke size's schedule, shared by the idx study's and the face preset's ``--quick``:
#: epochs, training images every run sees at least, seeds of the table, seeds per γ-sweep point,
#: grid points tuned per head, seeds per tuning configuration, grid steps added past an edge.
QUICK_SCHEDULE = {
    "epochs": 2.0,
    "min_images": 1,
    "seeds": 2,
    "sweep_seeds": 1,
    "grid_points": 2,
    "tuning_seeds": 1,
    "grid_extension": 1,
}


def grid(head: StudyHead, points: int | None) -> list[dict]:
    """The head's tuning grid, cut to its first ``points`` configurations (None: all)."""
    return head.grid()[:points]


def tuning_seeds(count: int) -> tuple[int, ...]:
    """The tuning seeds: :data:`TUNING_SEED` and the ones after it."""
    return tuple(range(TUNING_SEED, TUNING_SEED + count))


def config_runs(head: StudyHead, config: dict, seeds: int, budget: float = 1.0) -> list[Run]:
    """A configuration's tuning runs, one per tuning seed."""
    return [
        Run(head, "tune", seed, config["lr"], config["scale"], budget)
        for seed in tuning_seeds(seeds)
    ]


def tuning_runs(heads: tuple[StudyHead, ...], points: int | None = None, seeds: int = 1) -> list:
    """Every head's grid, one run per configuration and tuning seed."""
    return [
        run
        for head in heads
        for point in grid(head, points)
        for run in config_runs(head, point, seeds)
    ]


def config_score(head: StudyHead, config: dict, results: dict, seeds: int):
    """(mean validation sample-wise accuracy over the tuning seeds, all converged), or None
    while a run is missing."""
    runs = config_runs(head, config, seeds)
    if any(r.key not in results for r in runs):
        return None
    values = [results[r.key].get(schema.SAMPLE_ACCURACY) for r in runs]
    mean = None if None in values else sum(values) / len(values)
    return mean, all(bool(results[r.key].get(schema.CONVERGED)) for r in runs)


def _pick(scored: list) -> int:
    """The tuning rule (:func:`facebench.runs.choose`) over (accuracy, converged) pairs."""
    return choose([a for a, _ in scored], [c for _, c in scored])


def _beyond_edges(head: StudyHead, configs: list[dict], chosen: dict, steps: int) -> list[dict]:
    """The chosen point's neighbours beyond every grid edge it sits on, within ``steps``."""
    base = head.grid()
    new = []
    for axis in ("lr", "scale"):
        values = sorted({c[axis] for c in configs if c[axis] is not None})
        if chosen[axis] is None or len(values) < 2:
            continue
        low, high = min(c[axis] for c in base), max(c[axis] for c in base)
        if chosen[axis] == values[-1] and chosen[axis] < high * AXIS_FACTOR**steps * 0.999:
            new.append({**chosen, axis: chosen[axis] * AXIS_FACTOR})
        if chosen[axis] == values[0] and chosen[axis] > low / AXIS_FACTOR**steps * 1.001:
            new.append({**chosen, axis: chosen[axis] / AXIS_FACTOR})
    return [c for c in new if c not in configs]


def extended_grid(head: StudyHead, results: dict, points, seeds: int, steps: int):
    """(the grid extended until the choice is interior or the extension limit is reached, the
    runs still needed to go on). Deterministic from ``results``, so resumable."""
    configs = list(grid(head, points))
    while True:
        missing = [r for c in configs for r in config_runs(head, c, seeds) if r.key not in results]
        if missing:
            return configs, missing
        scored = [config_score(head, c, results, seeds) for c in configs]
        new = _beyond_edges(head, configs, configs[_pick(scored)], steps)
        if not new:
            return configs, []
        configs += new


def missing_tuning_runs(heads, results: dict, points, seeds: int, steps: int) -> list[Run]:
    """The tuning runs the extension rule asks for next (none: tuning is complete)."""
    return [r for h in heads for r in extended_grid(h, results, points, seeds, steps)[1]]


def edges(head: StudyHead, configs: list[dict], scored: list, best: int) -> list[dict]:
    """Every axis on which the choice is still the grid's edge, with the trend (its accuracy
    minus the inner neighbour's on that axis): a limit to report."""
    chosen, out = configs[best], []
    for axis in ("lr", "scale"):
        line = sorted(
            (c[axis], s[0])
            for c, s in zip(configs, scored, strict=True)
            if c[axis] is not None and all(c[o] == chosen[o] for o in ("lr", "scale") if o != axis)
        )
        if len(line) < 2 or chosen[axis] not in (line[0][0], line[-1][0]):
            continue
        inner = line[1] if chosen[axis] == line[0][0] else line[-2]
        side = "low" if chosen[axis] == line[0][0] else "high"
        trend = None if inner[1] is None or scored[best][0] is None else scored[best][0] - inner[1]
        out.append({"axis": axis, "side": side, "value": chosen[axis], "trend": trend})
    return out


def select_settings(
    heads: tuple[StudyHead, ...],
    results: dict[str, dict],
    points: int | None = None,
    seeds: int = 1,
    steps: int = 0,
) -> dict[str, dict]:
    """Per head key: the chosen ``lr`` and ``scale`` (mean over the tuning seeds decides, on the
    extended grid), every grid point's score, the edges left with their trend, and for the γ
    sweep's heads the learning rate chosen at each γ."""
    chosen = {}
    for head in heads:
        configs, _ = extended_grid(head, results, points, seeds, steps)
        scored = [config_score(head, c, results, seeds) or (None, False) for c in configs]
        best = _pick(scored)
        chosen[head.key] = {
            **configs[best],
            "validation_sample_accuracy": scored[best][0],
            "tuned_on_converged_run": scored[best][1],
            "grid": [
                {**c, "validation_sample_accuracy": a, schema.CONVERGED: ok}
                for c, (a, ok) in zip(configs, scored, strict=True)
            ],
            "edges": edges(head, configs, scored, best),
        }
        if head.key in SWEEP_HEADS:
            chosen[head.key]["sweep_lr"] = sweep_lrs(head, results, seeds, chosen[head.key])
    return chosen


def sweep_configs(head: StudyHead, gamma: float) -> list[dict]:
    """The learning rates tried at each γ of the sweep (the normalized grid's, >= 2)."""
    return [{"lr": lr, "scale": gamma} for lr in NORMALIZED_LRS]


def sweep_tuning_runs(heads: tuple[StudyHead, ...], seeds: int) -> list[Run]:
    """The γ sweep re-tunes the learning rate at every γ: its tuning runs."""
    return [
        run
        for head in heads
        if head.key in SWEEP_HEADS
        for gamma in SWEEP_SCALES
        for config in sweep_configs(head, gamma)
        for run in config_runs(head, config, seeds)
    ]


def sweep_lrs(head: StudyHead, results: dict, seeds: int, chosen: dict) -> dict[str, float]:
    """Per γ (as text): the learning rate of the sweep, by the tuning rule; the table's lr at
    the chosen γ."""
    out = {}
    for gamma in SWEEP_SCALES:
        configs = sweep_configs(head, gamma)
        scored = [config_score(head, c, results, seeds) or (None, False) for c in configs]
        out[f"{gamma:g}"] = configs[_pick(scored)]["lr"]
    out[f"{chosen['scale']:g}"] = chosen["lr"]
    return out


def budget_check_runs(heads: tuple[StudyHead, ...], settings: dict, seeds: int) -> list[Run]:
    """The budget check: every head's chosen settings at B and :data:`BUDGET_FACTOR` x B, on
    the tuning task (fit -> validation), over the tuning seeds (B's are the tuning runs)."""
    return [
        run
        for head in heads
        for budget in (1.0, BUDGET_FACTOR)
        for run in config_runs(head, settings[head.key], seeds, budget)
    ]


def table_runs(heads: tuple[StudyHead, ...], settings: dict, seeds: int) -> list[Run]:
    """Every head's closed- and open-set runs (those of its tasks) at its chosen settings, seed
    by seed; the open-set run of seed i on partition i."""
    return [
        Run(
            head,
            task,
            seed,
            settings[head.key]["lr"],
            settings[head.key]["scale"],
            partition=seed if task == "open" else None,
        )
        for seed in range(seeds)
        for head in heads
        for task in head.tasks
    ]


def sweep_runs(heads: tuple[StudyHead, ...], settings: dict, seeds: int) -> list[Run]:
    """The γ sweep's closed-set runs of :data:`SWEEP_HEADS` (those studied), seed by seed."""
    swept = [h for h in heads if h.key in SWEEP_HEADS]
    return [
        Run(
            head,
            "closed",
            seed,
            settings[head.key].get("sweep_lr", {}).get(f"{gamma:g}", settings[head.key]["lr"]),
            gamma,
        )
        for seed in range(seeds)
        for gamma in SWEEP_SCALES
        for head in swept
    ]


def unique(runs: list[Run]) -> list[Run]:
    """``runs`` without repeats (a sweep point at the chosen γ is a table run), order kept."""
    seen: set[str] = set()
    return [r for r in runs if not (r.key in seen or seen.add(r.key))]
