"""Paired comparisons over seeds: the mean difference, its 95 % t interval and the verdict.

A seed fixes a run's initialisation and data order, so the runs of two heads with the same seed
form a pair. The rule, stated before any run: a claim **held** when the 95 % confidence interval
of the paired difference (claimed-better head minus the other, sign turned so that positive means
"as claimed") lies above 0, **reversed** when it lies below 0, and is **not resolved** otherwise
(it contains 0, or fewer than 2 pairs exist). A comparison with an unconverged run is **not
judged**.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from scipy import stats as _scipy_stats

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
    return {"seeds": seeds, "difference": interval, "verdict": verdict}
