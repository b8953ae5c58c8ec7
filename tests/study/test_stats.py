"""Paired intervals and verdicts against a float64 reference with the tabulated t quantiles."""

import math

import pytest

from facebench.study.stats import mean_interval, paired_verdict

#: two-sided 95 % t quantiles from a printed table (df 1, 2, 4)
T975 = {1: 12.706, 2: 4.303, 4: 2.776}


def test_mean_interval_matches_the_textbook_formula():
    values = [0.91, 0.88, 0.90, 0.93, 0.89]
    mean = sum(values) / 5
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / 4)
    got = mean_interval(values)
    assert got["mean"] == pytest.approx(mean) and got["std"] == pytest.approx(std)
    half = T975[4] * std / math.sqrt(5)
    assert got["low"] == pytest.approx(mean - half, abs=1e-5)
    assert got["high"] == pytest.approx(mean + half, abs=1e-5)


def test_one_value_has_no_interval_and_none_is_empty():
    assert mean_interval([0.5]) == {"mean": 0.5, "std": 0.0, "n": 1, "low": None, "high": None}
    assert mean_interval([]) is None


@pytest.mark.parametrize(
    ("claimed", "other", "higher", "expected"),
    [
        ([0.80, 0.82, 0.81], [0.70, 0.71, 0.72], True, "held"),
        ([0.70, 0.71, 0.72], [0.80, 0.82, 0.81], True, "reversed"),
        ([0.80, 0.70, 0.75], [0.74, 0.76, 0.75], True, "not resolved"),
        ([0.10, 0.11, 0.12], [0.30, 0.32, 0.31], False, "held"),  # lower is better
        ([0.80], [0.70], True, "not resolved"),  # one pair: no interval
    ],
)
def test_paired_verdict(claimed, other, higher, expected):
    got = paired_verdict(dict(enumerate(claimed)), dict(enumerate(other)), higher)
    assert got["verdict"] == expected
    diffs = [a - b for a, b in zip(claimed, other, strict=True)]
    assert got["difference"]["mean"] == pytest.approx(sum(diffs) / len(diffs))


def test_pairing_is_by_seed_not_by_position():
    # unpaired, the spread of the seeds hides the gap; paired, each seed shows +0.01
    claimed = {0: 0.61, 1: 0.81, 2: 0.71}
    other = {2: 0.70, 0: 0.60, 1: 0.80, 3: 0.10}  # seed 3 has no partner and is left out
    got = paired_verdict(claimed, other, True)
    assert got["seeds"] == [0, 1, 2]
    assert got["difference"]["mean"] == pytest.approx(0.01) and got["verdict"] == "held"


def test_unconverged_runs_are_not_judged():
    got = paired_verdict({0: 0.9, 1: 0.9}, {0: 0.1, 1: 0.2}, True, converged=False)
    assert got["verdict"] == "not judged"
