"""Paired intervals and verdicts against a float64 reference with the tabulated t quantiles."""

import math
import random

import pytest

from facebench.study.stats import (
    BUDGET_METRICS,
    adjusted_verdict,
    budget_converged,
    holm,
    judged_under_budget,
    mean_interval,
    paired_p_value,
    paired_verdict,
)

# pytest.approx's default (rel 1e-6) compares float64 arithmetic of a few terms (rounding
# about 1e-16 relative): it checks the formula, not rounding.

#: two-sided 95 % t quantiles from a printed table (df 1, 2, 4)
T975 = {1: 12.706, 2: 4.303, 4: 2.776}


def test_mean_interval_matches_the_textbook_formula():
    values = [0.91, 0.88, 0.90, 0.93, 0.89]
    mean = sum(values) / 5
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / 4)
    got = mean_interval(values)
    assert got["mean"] == pytest.approx(mean) and got["std"] == pytest.approx(std)
    half = T975[4] * std / math.sqrt(5)
    # the table's t has 3 decimals: off by at most 5e-4, times the standard error
    table = 5e-4 * std / math.sqrt(5)
    assert got["low"] == pytest.approx(mean - half, abs=table)
    assert got["high"] == pytest.approx(mean + half, abs=table)


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


def _holm_by_rejection(p_values, alpha):
    """Holm's procedure as published: walk the sorted p-values, reject while p_(k) <= alpha /
    (m - k), stop at the first that is not."""
    m = len(p_values)
    rejected = set()
    for k, (p, i) in enumerate(sorted((p, i) for i, p in enumerate(p_values))):
        if p > alpha / (m - k):
            break
        rejected.add(i)
    return rejected


def test_holm_matches_the_step_down_procedure_at_every_level():
    rng = random.Random(3)
    for _ in range(200):
        p_values = [rng.choice([rng.random(), rng.random() / 50]) for _ in range(rng.randint(1, 9))]
        adjusted = holm(p_values)
        for alpha in (0.001, 0.01, 0.05, 0.1, 0.2, 0.5):
            assert {i for i, a in enumerate(adjusted) if a <= alpha} == _holm_by_rejection(
                p_values, alpha
            )


def test_holm_fixed_vector_by_hand():
    # sorted 0.005, 0.01, 0.03, 0.04 -> 4*0.005, 3*0.01, 2*0.03, max(0.06, 1*0.04): the values
    # statsmodels' multipletests(method="holm") gives for this vector
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1


def test_holm_counts_untested_members_in_the_family():
    # a declared test without a p-value still makes the family 3 large
    got = holm([0.01, None, 0.02])
    assert got[1] is None and got[0] == pytest.approx(0.03) and got[2] == pytest.approx(0.04)


def test_paired_p_value_agrees_with_the_interval():
    diffs = [0.011, 0.009, 0.013, 0.004, 0.010]
    p = paired_p_value(diffs)
    mean = sum(diffs) / 5
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / 4)
    t = mean / (sd / math.sqrt(5))
    assert t > T975[4] and p < 0.05  # outside the tabulated quantile: significant at 5 %
    assert mean_interval(diffs)["low"] > 0
    assert paired_p_value([0.0, 0.0]) == 1.0 and paired_p_value([0.1, 0.1]) == 0.0
    assert paired_p_value([0.1]) is None


@pytest.mark.parametrize(
    ("verdict", "mean", "p", "sign", "expected"),
    [
        ("held", 0.1, 0.01, 1.0, "held"),
        ("held", 0.1, 0.2, 1.0, "not resolved"),  # held raw, lost after Holm
        ("reversed", -0.1, 0.001, 1.0, "reversed"),
        ("held", -0.1, 0.001, -1.0, "held"),  # lower is better
        ("not judged", 0.1, 0.001, 1.0, "not judged"),
        ("not resolved", 0.1, None, 1.0, "not resolved"),
    ],
)
def test_adjusted_verdict(verdict, mean, p, sign, expected):
    assert adjusted_verdict(verdict, mean, p, sign) == expected


def test_budget_rule_can_fail():
    at_b = {
        0: {"sample_accuracy": 0.88, "uniform_accuracy": 0.56},
        1: {"sample_accuracy": 0.89, "uniform_accuracy": 0.57},
    }
    moved = {
        0: {"sample_accuracy": 0.885, "uniform_accuracy": 0.66},
        1: {"sample_accuracy": 0.89, "uniform_accuracy": 0.67},
    }
    still = {
        0: {"sample_accuracy": 0.885, "uniform_accuracy": 0.565},
        1: {"sample_accuracy": 0.886, "uniform_accuracy": 0.568},
    }
    assert not budget_converged(at_b, moved)["converged"]  # uniform moved by 0.10
    assert budget_converged(at_b, moved)["failed"] == ["uniform_accuracy"]
    got = budget_converged(at_b, still)
    assert got["failed"] == []
    assert got["converged"] and got["changes"]["sample_accuracy"]["mean"] == pytest.approx(0.0005)
    one_seed = budget_converged({0: at_b[0]}, {0: still[0]})  # one seed: unchecked
    assert not one_seed["converged"] and one_seed["failed"] == list(BUDGET_METRICS)


@pytest.mark.parametrize(
    "metric, failed, judged",
    [
        ("sample_accuracy", (), True),
        ("sample_accuracy", ("uniform_accuracy",), True),
        ("uniform_accuracy", ("uniform_accuracy",), False),
        ("intra_class_cosine", ("uniform_accuracy",), False),
        ("intra_class_cosine", (), True),
    ],
)
def test_a_metric_is_judged_where_its_budget_check_held(metric, failed, judged):
    assert judged_under_budget(metric, failed) is judged
