"""Paired comparisons over seeds: the mean difference, its 95 % t interval and the verdict.

A seed fixes a run's initialisation and data order, so the runs of two heads with the same seed
form a pair. The rule, stated before any run: a claim **held** when the 95 % confidence interval
of the paired difference (claimed-better head minus the other, sign turned so that positive means
"as claimed") lies above 0, **reversed** when it lies below 0, and is **not resolved** otherwise
(it contains 0, or fewer than 2 pairs exist). A comparison with an unconverged run is **not
judged**.

Open set: the unit is a (seed, partition) pair, each with its own trained models and its own bin
of pairs; two heads' runs of seed i on partition i pair up, and within the unit each resample of
the bin's pairs is the same for both heads (``facebench.study.measure.pair_bootstrap``). The
interval of the mean difference over n units is the t interval (n − 1 degrees of freedom) with
the per-unit variance s² widened by v̄, the mean over units of the pair-bootstrap variance of
the unit's difference: mean ± t · sqrt((s² + v̄) / n). s² already holds the pair noise of the
independent bins, so v̄ counts it twice: the interval is conservative, and never narrower than
the pairs allow when a few units happen to agree. The p-value is that of the same statistic.

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


def mean_interval(
    values: Sequence[float], confidence: float = CONFIDENCE, extra_variance: float = 0.0
) -> dict | None:
    """Mean, sample std (ddof 1), n and the two-sided t interval of the mean, its variance
    widened by ``extra_variance`` per value (the pair bootstrap's, see the module); None if
    empty."""
    values = [float(v) for v in values]
    n = len(values)
    if n == 0:
        return None
    mean = math.fsum(values) / n
    if n == 1:
        return {"mean": mean, "std": 0.0, "n": 1, "low": None, "high": None}
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    error = math.sqrt((std**2 + extra_variance) / n)
    half = _scipy_stats.t.ppf(0.5 + confidence / 2, n - 1) * error
    out = {"mean": mean, "std": std, "n": n, "low": mean - half, "high": mean + half}
    if extra_variance:
        out["pair_variance"] = extra_variance
    return out


def pair_variance(claimed: Sequence[float], other: Sequence[float]) -> float:
    """The pair-bootstrap variance (ddof 1) of one unit's difference: ``claimed`` and ``other``
    are the two runs' values on the same resamples of the unit's pairs."""
    diffs = [a - b for a, b in zip(claimed, other, strict=True)]
    mean = math.fsum(diffs) / len(diffs)
    return math.fsum((d - mean) ** 2 for d in diffs) / (len(diffs) - 1)


def paired_verdict(
    claimed: dict[int, float],
    other: dict[int, float],
    higher_is_better: bool,
    converged: bool = True,
    variances: dict[int, float] | None = None,
) -> dict:
    """Per-seed values of the claimed-better head and the other -> difference interval, verdict.

    Only seeds present on both sides pair up. The difference is reported as claimed − other; the
    verdict reads it in the claimed direction (for "lower is better" a negative difference).
    ``variances``: per seed (open set: per (seed, partition) unit) the pair-bootstrap variance of
    the difference; their mean over the paired seeds widens the interval (see the module)."""
    seeds = sorted(set(claimed) & set(other))
    diffs = [claimed[s] - other[s] for s in seeds]
    extra = 0.0
    if variances is not None and seeds:
        extra = math.fsum(variances[s] for s in seeds) / len(seeds)
    interval = mean_interval(diffs, extra_variance=extra)
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
        "p_value": None if verdict == "not judged" else paired_p_value(diffs, extra),
    }


def paired_p_value(diffs: Sequence[float], extra_variance: float = 0.0) -> float | None:
    """Two-sided p-value of the paired t test (mean of ``diffs`` = 0), its variance widened as
    :func:`mean_interval`'s; None with < 2 pairs.

    No spread: 1.0 when the mean is 0, else 0.0 (the t statistic is infinite)."""
    interval = mean_interval(diffs, extra_variance=extra_variance)
    if interval is None or interval["low"] is None:
        return None
    n, mean = interval["n"], interval["mean"]
    error = math.sqrt((interval["std"] ** 2 + extra_variance) / n)
    if error == 0.0:
        return 1.0 if mean == 0 else 0.0
    return float(2.0 * _scipy_stats.t.sf(abs(mean) / error, n - 1))


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


#: The budget rule: a head's runs count as converged on a metric when doubling the budget (same
#: schedule shape) moves its mean validation value, paired by seed over >= 2 seeds, by less
#: than this (absolute). Checked on sample-wise and uniform accuracy.
BUDGET_TOLERANCE = 0.01
BUDGET_METRICS = (schema.SAMPLE_ACCURACY, schema.UNIFORM_ACCURACY)


def budget_converged(at_b: dict[int, dict], at_2b: dict[int, dict]) -> dict:
    """Per-seed results at B and 2B -> per metric the mean change 2B − B with its interval,
    ``failed``: the budget metrics that moved by :data:`BUDGET_TOLERANCE` or more (all of them
    with fewer than 2 paired seeds), and ``converged``: none failed."""
    seeds = sorted(set(at_b) & set(at_2b))
    changes = {m: mean_interval([at_2b[s][m] - at_b[s][m] for s in seeds]) for m in BUDGET_METRICS}
    failed = [
        m
        for m, c in changes.items()
        if len(seeds) < 2 or c is None or abs(c["mean"]) >= BUDGET_TOLERANCE
    ]
    return {"seeds": seeds, "changes": changes, "failed": failed, schema.CONVERGED: not failed}


def judged_under_budget(metric: str, failed) -> bool:
    """Whether a head whose budget check failed on ``failed`` metrics is judged on ``metric``:
    a checked metric when it held itself; any other metric only when every check held."""
    if metric in BUDGET_METRICS:
        return metric not in failed
    return not failed
