"""benchmarks/rejudge_results.py: p-values rebuilt from printed intervals, Holm over the table."""

import importlib.util
from pathlib import Path

import pytest
from scipy import stats as scipy_stats

from facebench.errors import DataError
from facebench.study.stats import holm, mean_interval, paired_p_value

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "rejudge_results.py"
spec = importlib.util.spec_from_file_location("rejudge_results", SCRIPT)
rejudge = importlib.util.module_from_spec(spec)
spec.loader.exec_module(rejudge)

T_CRIT = scipy_stats.t.ppf(0.975, 4)


def _half(mean: float, p: float) -> float:
    """The 95 % t half-width (n = 5) that gives the two-sided p ``p`` for ``mean``."""
    return abs(mean) / scipy_stats.t.isf(p / 2, 4) * T_CRIT


def _rounding_rel(mean: float, p: float, digits: int = 6) -> float:
    """The largest relative change of p that printing mean, low and high to ``digits``
    decimals allows: |mean| and the half-width each move by up to half a unit."""
    u, half = 10.0**-digits / 2, _half(mean, p)
    ends = [(abs(mean) + u) / (half - u), (abs(mean) - u) / (half + u)]  # t / T_CRIT
    return max(abs(2 * scipy_stats.t.sf(t * T_CRIT, 4) / p - 1) for t in ends)


def _row(claim: str, mean: float, p: float, verdict: str, digits: int = 6) -> str:
    """A table row (n = 5) whose 95 % t interval gives the two-sided p ``p`` for ``mean``."""
    half = _half(mean, p)
    low, high = mean - half, mean + half
    interval = f"{mean:+.{digits}f} [{low:+.{digits}f}, {high:+.{digits}f}]"
    return f"| {claim} | A | B | 5 | {interval} | {verdict} |"


def _page(*rows: str) -> str:
    return "\n".join(
        [
            "Some text; a table without the columns comes first.",
            "",
            "| head | sample-wise |",
            "|---|---|",
            "| A | 0.9 |",
            "",
            "| claim | head | vs | pairs | difference (95 % CI) | verdict |",
            "|---|---|---|---|---|---|",
            *rows,
            "",
            "After the table.",
        ]
    )


def test_p_from_the_printed_interval_is_the_paired_t_test_of_the_data():
    diffs = [0.012, 0.004, 0.009, -0.001, 0.007]
    stat = mean_interval(diffs)
    line = (
        f"| (2) sample-wise accuracy | A | B | 5 | {stat['mean']:+.12f} "
        f"[{stat['low']:+.12f}, {stat['high']:+.12f}] | held |"
    )
    (row,) = rejudge.parse_claims(_page(line))
    assert (row["n"], row["verdict"], row["unit"]) == (5, "held", 1e-12)
    (judged,) = rejudge.rejudge([row])
    # 12 printed digits: the rebuilt p is the data's within what that rounding allows
    p = paired_p_value(diffs)
    assert judged["p"] == pytest.approx(p, rel=_rounding_rel(stat["mean"], p, digits=12))
    assert judged["p_adjusted"] == judged["p"]  # a family of one: Holm changes nothing


def test_holm_over_the_table_turns_raw_held_into_not_resolved():
    rows = [
        ("(1) uniform accuracy", 0.2, 0.001, "held"),
        ("(2) sample-wise accuracy", 0.004, 0.03, "held"),
        ("(4) separated classes", -0.003, 0.04, "held"),  # lower is better
        ("(4) separated classes (closest pair)", -0.1, 0.002, "held"),
        ("(5) open set, TAR@FAR=1e-2", -0.02, 0.004, "reversed"),
    ]
    judged = rejudge.rejudge(rejudge.parse_claims(_page(*(_row(*r) for r in rows))))
    raw = [p for _, _, p, _ in rows]
    # the 6 printed decimals are the only error; Holm's products and maxima keep relative errors
    rel = max(_rounding_rel(mean, p) for _, mean, p, _ in rows)
    assert [j["p"] for j in judged] == pytest.approx(raw, rel=rel)
    # Holm: 5 × 0.001, 4 × 0.002, 3 × 0.004, then 2 × 0.03 = 0.06 and max(0.06, 1 × 0.04)
    assert [j["p_adjusted"] for j in judged] == pytest.approx(holm(raw), rel=rel)
    assert [j["adjusted_verdict"] for j in judged] == [
        "held",
        "not resolved",
        "not resolved",
        "held",  # a negative difference of a lower-is-better claim
        "reversed",  # TAR at any FAR: higher is better
    ]
    assert not any(j["rounding"] for j in judged)  # 6 digits: far from 0.05


def test_rounding_flag_when_the_printed_digits_straddle_the_level():
    # p ≈ 0.05 exactly; one printed decimal of an interval 1.2 wide moves p across 0.05
    line = _row("(1) uniform accuracy", 0.5, 0.0499, "held", digits=1)
    (judged,) = rejudge.rejudge(rejudge.parse_claims(_page(line)))
    assert judged["rounding"]


def test_its_own_output_parses_to_the_same_verdicts():
    page = _page(
        _row("(1) uniform accuracy", 0.2, 0.001, "held"),
        _row("(2) sample-wise accuracy", 0.004, 0.03, "held"),
        _row("(4) compact features", 0.01, 0.04, "held"),
    )
    first = rejudge.rejudge(rejudge.parse_claims(page))
    again = rejudge.rejudge(rejudge.parse_claims(rejudge.markdown(first)))
    assert [(j["verdict"], j["adjusted_verdict"]) for j in again] == [
        (j["verdict"], j["adjusted_verdict"]) for j in first
    ]
    # Holm: 0.003, 0.06, 0.06
    assert "raw (3 tests): 3 held" in rejudge.markdown(first)
    assert "adjusted (3 tests): 1 held, 2 not resolved" in rejudge.markdown(first)


@pytest.mark.parametrize(
    ("line", "named"),
    [
        ("| (1) uniform accuracy | A | B | 5 | +0.2 (0.1, 0.3) | held |", "page:9: expected"),
        ("| (1) uniform accuracy | A | B | five | +0.2 [+0.1, +0.3] | held |", "page:9: expected"),
        ("| (1) uniform accuracy | A | B | 5 | +0.2 [+0.1, +0.3] | true |", "page:9: expected"),
        ("| (1) uniform accuracy | A | B | 5 | +0.2 [+0.1, +0.3] |", "page:9: 5 cells"),
        ("| (9) other | A | B | 5 | +0.2 [+0.1, +0.3] | held |", "'(9) other': not one"),
    ],
)
def test_a_bad_row_is_named(line, named):
    with pytest.raises(DataError, match=named.replace("(", r"\(").replace(")", r"\)")):
        rejudge.rejudge(rejudge.parse_claims(_page(line)))


def test_bad_page_is_one_line_exit_2(tmp_path, capsys):
    missing = tmp_path / "nowhere.md"
    assert rejudge.main([str(missing)]) == 2
    no_table = tmp_path / "plain.md"
    no_table.write_text("no table here\n")
    assert rejudge.main([str(no_table)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 2
    assert str(missing) in lines[0] and "cannot read" in lines[0]
    assert "plain.md: no table with the columns" in lines[1]
