"""Uniform classification metrics (method.md §3) from a closed-set score matrix, exact.

Sample i (positive score p_i = s[i, y_i], hardest negative n_i = max_{k != y_i} s[i, k]) is right
at threshold t iff ``p_i > t`` and ``n_i < t``: t inside the open interval (n_i, p_i). The best
single threshold is where the most intervals overlap, found by sorting the 2N interval ends.
"""

from __future__ import annotations

import numpy as np

from facebench import schema
from facebench.errors import EvalError

HISTOGRAM_BINS = 100


def positive_and_negative(scores: np.ndarray, labels: np.ndarray, source: str = "<scores>"):
    """Validate an (N, K) score matrix and N labels; return (p, n): own-class and max other."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels)
    if s.ndim != 2 or s.shape[1] < 2:
        raise EvalError(f"{source}: scores must be (N, K) with K >= 2, got shape {s.shape}")
    if y.shape != (s.shape[0],):
        raise EvalError(f"{source}: {y.size} labels for {s.shape[0]} score rows")
    if s.shape[0] == 0:
        raise EvalError(f"{source}: no samples")
    if not np.isfinite(s).all():
        row = int(np.flatnonzero(~np.isfinite(s).all(axis=1))[0])
        raise EvalError(f"{source}: score row {row} is not finite (NaN or inf)")
    if not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= s.shape[1]:
        raise EvalError(f"{source}: labels must be integers in [0, {s.shape[1]}), got {y[:5]}...")
    rows = np.arange(s.shape[0])
    pos = s[rows, y]
    masked = s.copy()
    masked[rows, y] = -np.inf
    return pos, masked.max(axis=1)


def max_overlap(starts, ends, groups=None):
    """For open intervals (start, end) tagged by group: per group, the most intervals sharing a
    point and the lowest such point's gap midpoint. Returns ({group: count}, {group: t})."""
    starts, ends = np.asarray(starts, np.float64), np.asarray(ends, np.float64)
    groups = np.zeros(starts.size, np.int64) if groups is None else np.asarray(groups)
    values = np.concatenate([starts, ends])
    steps = np.concatenate([np.ones(starts.size, np.int64), -np.ones(ends.size, np.int64)])
    tags = np.concatenate([groups, groups])
    order = np.lexsort((values, tags))
    values, steps, tags = values[order], steps[order], tags[order]
    # each group's steps sum to zero, so one running sum restarts at every group boundary
    inside = np.cumsum(steps)
    last = np.ones(values.size, bool)  # last event of each (group, value) run: count in the gap
    last[:-1] = (tags[1:] != tags[:-1]) | (values[1:] != values[:-1])
    at = np.flatnonzero(last)
    pick = np.lexsort((at, -inside[at], tags[at]))  # per group: highest count, then lowest value
    first_of_group = np.ones(pick.size, bool)
    first_of_group[1:] = tags[at[pick[1:]]] != tags[at[pick[:-1]]]
    best = at[pick[first_of_group]]
    counts, points = {}, {}
    for i in best.tolist():
        counts[tags[i].item()] = int(inside[i])
        # the gap after the last event of a run ends at the next value (same group: count > 0)
        points[tags[i].item()] = float((values[i] + values[i + 1]) / 2) if inside[i] else None
    return counts, points


def uniform_accuracy_at(pos: np.ndarray, neg: np.ndarray, t: float) -> float:
    """Uniform accuracy at one threshold: mean of [p > t and n < t]."""
    return float(np.mean((pos > t) & (neg < t)))


def uniform_metrics(
    scores: np.ndarray,
    labels: np.ndarray,
    learned_threshold: float | None = None,
    source: str = "<scores>",
) -> dict:
    """Sample-wise, uniform (with t*) and class-wise accuracy of an (N, K) score matrix.

    ``learned_threshold`` is in the units of ``scores``. See :func:`margin_metrics`."""
    pos, neg = positive_and_negative(scores, labels, source)
    report = margin_metrics(pos, neg, labels, learned_threshold)
    report["classes"] = int(np.asarray(scores).shape[1])
    return report


def margin_metrics(
    pos: np.ndarray, neg: np.ndarray, labels: np.ndarray, learned_threshold: float | None = None
) -> dict:
    """The metrics from each sample's own-class score ``pos`` and hardest other score ``neg``.

    Class-wise accuracy gives each class c its own best threshold over the samples labelled c,
    read two ways: ``class_wise_accuracy_sample_weighted`` (right samples / N, always between
    uniform and sample-wise) and ``class_wise_accuracy_class_mean`` (mean of per-class rates)."""
    labels = np.asarray(labels)
    right = pos > neg
    n = pos.size
    overall, t_star = max_overlap(neg[right], pos[right])
    per_class, _ = max_overlap(neg[right], pos[right], labels[right])
    classes, class_sizes = np.unique(labels, return_counts=True)
    class_right = np.array([per_class.get(c, 0) for c in classes.tolist()])
    report = {
        schema.KIND: schema.UNIFORM,
        "samples": int(n),
        "classes_present": int(classes.size),
        schema.SAMPLE_ACCURACY: float(right.mean()),
        schema.UNIFORM_ACCURACY: overall.get(0, 0) / n,
        schema.UNIFORM_THRESHOLD: t_star.get(0),
        schema.CLASS_WISE_ACCURACY_SAMPLE_WEIGHTED: float(class_right.sum() / n),
        schema.CLASS_WISE_ACCURACY_CLASS_MEAN: float(np.mean(class_right / class_sizes)),
        schema.LEARNED_THRESHOLD: learned_threshold,
        schema.UNIFORM_ACCURACY_AT_LEARNED_THRESHOLD: None
        if learned_threshold is None
        else uniform_accuracy_at(pos, neg, learned_threshold),
    }
    low, high = float(min(neg.min(), pos.min())), float(max(neg.max(), pos.max()))
    edges = np.linspace(low, high if high > low else low + 1.0, HISTOGRAM_BINS + 1)
    report["histogram"] = {
        "edges": edges.tolist(),
        "positive": np.histogram(pos, edges)[0].tolist(),
        "max_negative": np.histogram(neg, edges)[0].tolist(),
    }
    return report
