"""Paired comparisons over seeds: the mean difference, its 95 % t interval and the verdict.

A seed fixes a run's initialisation and data order, so the runs of two heads with the same seed
form a pair. The rule, stated before any run: a claim **held** when the 95 % confidence interval
of the paired difference (claimed-better head minus the other, sign turned so that positive means
"as claimed") lies above 0, **reversed** when it lies below 0, and is **not resolved** otherwise
(it contains 0, or fewer than 2 pairs exist). A comparison with an unconverged run is **not
judged**.

Multiplicity: every (comparison, metric) test of the study is declared before the run
(``facebench.study.report.declared_family``); each gets the paired t test's p-value (the same
test as the interval: p < 0.05 iff the 95 % interval excludes 0) and Holm's step-down adjustment
over the whole family (:func:`holm`). A claim is reported raw and adjusted; the adjusted verdict
is the one the docs state.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from scipy import stats as _scipy_stats

from facebench import schema

CONFIDENCE = 0.95
VERDICTS = ("held", "reversed", "not resolved", "not judged")


def mean_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> dict | None:
    """Mean, sample std (ddof 1), n and the two-sided t interval of the mean; None if empty."""
    values = [float(v) for v in values]
    n = len(values)
    if n == 0:
        return None
    mean = math.fsum(values) / n
    if n == 1:
        return {"mean": mean, "std": 0.0, "n": 1, "low": None, "high": None}
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    half = _scipy_stats.t.ppf(0.5 + confidence / 2, n - 1) * std / math.sqrt(n)
    return {"mean": mean, "std": std, "n": n, "low": mean - half, "high": mean + half}


def paired_verdict(
    claimed: dict[int, float],
    other: dict[int, float],
    higher_is_better: bool,
    converged: bool = True,
) -> dict:
    """Per-seed values of the claimed-better head and the other -> difference interval, verdict.

    Only seeds present on both sides pair up. The difference is reported as claimed − other; the
    verdict reads it in the claimed direction (for "lower is better" a negative difference)."""
    seeds = sorted(set(claimed) & set(other))
    diffs = [claimed[s] - other[s] for s in seeds]
    interval = mean_interval(diffs)
    sign = 1.0 if higher_is_better else -1.0
    if not converged:
        verdict = "not judged"
    elif interval is None or interval["low"] is None:
        verdict = "not resolved"
    elif sign * interval["low"] > 0 and sign * interval["high"] > 0:
        verdict = "held"
    elif sign * interval["low"] < 0 and sign * interval["high"] < 0:
        verdict = "reversed"
    else:
        verdict = "not resolved"
    return {
        "seeds": seeds,
        "difference": interval,
        "verdict": verdict,
        "p_value": None if verdict == "not judged" else paired_p_value(diffs),
    }


def paired_p_value(diffs: Sequence[float]) -> float | None:
    """Two-sided p-value of the paired t test (mean of ``diffs`` = 0); None with < 2 pairs.

    No spread: 1.0 when every difference is 0, else 0.0 (the t statistic is infinite)."""
    values = [float(v) for v in diffs]
    if len(values) < 2:
        return None
    mean = math.fsum(values) / len(values)
    if all(v == values[0] for v in values):
        return 1.0 if mean == 0 else 0.0
    return float(_scipy_stats.ttest_1samp(values, 0.0).pvalue)


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjusted p-values, in the order given.

    The family is every entry: a test without a p-value (None: not judged, too few pairs) still
    counts in its size m and stays None. Sorted ascending, the i-th (from 0) smallest p becomes
    max over j <= i of min(1, (m - j) p_(j))."""
    m = len(p_values)
    order = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    adjusted: list[float | None] = [None] * m
    running = 0.0
    for rank, (p, index) in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[index] = running
    return adjusted


def adjusted_verdict(verdict: str, mean: float | None, p: float | None, sign: float) -> str:
    """The verdict at family-wise level 1 − CONFIDENCE from a Holm-adjusted p-value ``p``:
    held / reversed when ``p`` < 0.05 (direction from ``sign`` × ``mean``), else not resolved;
    "not judged" stays."""
    if verdict == "not judged":
        return verdict
    if p is None or mean is None or p >= 1.0 - CONFIDENCE:
        return "not resolved"
    return "held" if sign * mean > 0 else "reversed"


#: The budget rule: a head's runs count as converged when doubling the budget (same schedule
#: shape) moves its mean validation sample-wise and uniform accuracy, paired by seed over >= 2
#: seeds, by less than this (absolute).
BUDGET_TOLERANCE = 0.01
BUDGET_METRICS = (schema.SAMPLE_ACCURACY, schema.UNIFORM_ACCURACY)


def budget_converged(at_b: dict[int, dict], at_2b: dict[int, dict]) -> dict:
    """Per-seed results at B and 2B -> per metric the mean change 2B − B with its interval, and
    ``converged`` by :data:`BUDGET_TOLERANCE` (False with fewer than 2 paired seeds)."""
    seeds = sorted(set(at_b) & set(at_2b))
    changes = {m: mean_interval([at_2b[s][m] - at_b[s][m] for s in seeds]) for m in BUDGET_METRICS}
    converged = len(seeds) >= 2 and all(
        c is not None and abs(c["mean"]) < BUDGET_TOLERANCE for c in changes.values()
    )
    return {"seeds": seeds, "changes": changes, schema.CONVERGED: converged}
