"""Uniform classification metrics against Python-loop references over every candidate threshold."""

from itertools import pairwise

import numpy as np
import pytest

from facebench.errors import EvalError
from facebench.eval.uniform import max_overlap, uniform_accuracy_at, uniform_metrics


def synthetic_scores(n, k, seed, separation=1.5, imbalance=False, decimals=None):
    rng = np.random.default_rng(seed)
    p = np.geomspace(1, 20, k) if imbalance else np.ones(k)
    labels = rng.choice(k, size=n, p=p / p.sum())
    offsets = rng.normal(0, 0.7, size=n)  # per-sample shifts make adaptive != uniform
    scores = rng.normal(size=(n, k)) + offsets[:, None]
    scores[np.arange(n), labels] += separation
    if decimals is not None:
        scores = np.round(scores, decimals)
    return scores, labels


def loop_uniform(scores, labels, rows):
    """Best uniform count over ``rows`` and its lowest threshold, trying every gap between the
    distinct ends of the samples that can be right (the count only changes at those)."""
    pos = [scores[i, labels[i]] for i in rows]
    neg = [max(v for k, v in enumerate(scores[i]) if k != labels[i]) for i in rows]
    ends = sorted({v for p, q in zip(pos, neg, strict=True) if p > q for v in (p, q)} or {0.0})
    candidates = [ends[0] - 1] + [(a + b) / 2 for a, b in pairwise(ends)]
    best, best_t = 0, None
    for t in candidates:
        count = sum(1 for p, q in zip(pos, neg, strict=True) if p > t and q < t)
        if count > best:
            best, best_t = count, t
    return best, best_t


@pytest.mark.parametrize("decimals", [None, 1])
def test_uniform_and_class_wise_match_loops(decimals):
    scores, labels = synthetic_scores(300, 6, seed=1, decimals=decimals, imbalance=True)
    got = uniform_metrics(scores, labels)
    rows = range(len(labels))
    best, t = loop_uniform(scores, labels, rows)
    assert got["uniform_accuracy"] == best / len(labels)
    assert got["uniform_threshold"] == pytest.approx(t)
    per_class = [
        loop_uniform(scores, labels, np.flatnonzero(labels == c))[0] for c in np.unique(labels)
    ]
    sizes = np.bincount(labels)
    assert got["class_wise_accuracy_sample_weighted"] == pytest.approx(sum(per_class) / 300)
    assert got["class_wise_accuracy_class_mean"] == pytest.approx(np.mean(per_class / sizes))
    top1 = np.mean(np.argmax(scores, 1) == labels)
    if decimals is None:  # no ties: argmax agrees with "own score beats every other"
        assert got["sample_accuracy"] == top1


def test_threshold_gives_reported_accuracy_and_grid_never_beats_it():
    scores, labels = synthetic_scores(500, 10, seed=2)
    got = uniform_metrics(scores, labels)
    pos = scores[np.arange(500), labels]
    masked = scores.copy()
    masked[np.arange(500), labels] = -np.inf
    neg = masked.max(1)
    assert uniform_accuracy_at(pos, neg, got["uniform_threshold"]) == got["uniform_accuracy"]
    grid = np.linspace(scores.min(), scores.max(), 3001)
    assert max(uniform_accuracy_at(pos, neg, t) for t in grid) <= got["uniform_accuracy"]


@pytest.mark.parametrize("seed", range(5))
def test_ordering_uniform_class_wise_sample_wise(seed):
    scores, labels = synthetic_scores(200, 5, seed=seed, imbalance=seed % 2 == 1)
    got = uniform_metrics(scores, labels)
    assert got["uniform_accuracy"] <= got["class_wise_accuracy_sample_weighted"]
    assert got["class_wise_accuracy_sample_weighted"] <= got["sample_accuracy"]
    if seed % 2 == 0:  # with equal class sizes the class-mean reading is ordered too
        balanced = np.repeat(np.arange(5), 40)
        got = uniform_metrics(scores, balanced)
        assert got["class_wise_accuracy_class_mean"] == pytest.approx(
            got["class_wise_accuracy_sample_weighted"]
        )


def test_learned_threshold_is_scored_in_score_units():
    scores = np.array([[2.0, -1.0], [-0.5, 1.0], [0.5, 0.2]])
    labels = np.array([0, 1, 0])
    got = uniform_metrics(scores, labels, learned_threshold=0.0)
    # t = 0: rows 0 and 1 are right; row 2 has its negative 0.2 above 0
    assert got["uniform_accuracy_at_learned_threshold"] == pytest.approx(2 / 3)
    assert got["uniform_accuracy"] == 1.0
    assert 0.2 < got["uniform_threshold"] < 0.5


def test_max_overlap_groups_and_empty():
    counts, points = max_overlap([0, 1, 5, 0], [2, 3, 6, 1], [0, 0, 0, 1])
    assert counts == {0: 2, 1: 1}
    assert points == {0: 1.5, 1: 0.5}
    # touching open intervals do not overlap
    counts, _ = max_overlap([0, 1], [1, 2])
    assert counts == {0: 1}
    assert max_overlap([], []) == ({}, {})


def test_nothing_right_gives_zero():
    got = uniform_metrics(np.array([[0.0, 1.0], [1.0, 0.0]]), np.array([0, 1]))
    assert got["uniform_accuracy"] == 0.0 and got["uniform_threshold"] is None


def test_bad_inputs():
    scores, labels = synthetic_scores(20, 3, seed=0)
    with pytest.raises(EvalError, match="19 labels for 20"):
        uniform_metrics(scores, labels[:19])
    bad = scores.copy()
    bad[4, 1] = np.nan
    with pytest.raises(EvalError, match="row 4 is not finite"):
        uniform_metrics(bad, labels)
    with pytest.raises(EvalError, match=r"labels must be integers in \[0, 3\)"):
        uniform_metrics(scores, labels + 3)
    with pytest.raises(EvalError, match="K >= 2"):
        uniform_metrics(scores[:, :1], labels * 0)
