"""Rejudge a printed claims table with Holm's correction (issue 24, item 2, for the old run).

Reads the markdown table of paired differences in a page (default docs/results_2026-12-01.md,
the old run: the table whose header has "claim" and "difference (95 % CI)"), rebuilds each
test's two-sided paired t p-value from its printed mean and 95 % t interval over n pairs (n − 1
degrees of freedom), takes every row as the declared family, applies
``facebench.study.stats.holm`` and prints the table with raw and adjusted verdicts, then the
verdict counts. A verdict whose adjusted p crosses 0.05 within the rounding of the printed
numbers (±half a unit of the last digit) is flagged.

python benchmarks/rejudge_results.py                     # docs/results_2026-12-01.md
python benchmarks/rejudge_results.py study_out/claims.md # a study's own claims table
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path

from scipy import stats as scipy_stats

from facebench.errors import DataError, FacebenchError
from facebench.study.report import CLAIMS
from facebench.study.stats import CONFIDENCE, VERDICTS, adjusted_verdict, holm

PAGE = Path(__file__).resolve().parents[1] / "docs" / "results_2026-12-01.md"
DIFFERENCE = "difference (95 % CI)"
COLUMNS = ("claim", "head", "vs", "pairs", DIFFERENCE)
_INTERVAL = re.compile(r"^([+-]?\d+(?:\.(\d+))?) \[([+-]?\d+(?:\.\d+)?), ([+-]?\d+(?:\.\d+)?)\]$")


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _verdict_column(line: str) -> str | None:
    """The verdict column's name when ``line`` is the header of a claims table, else None."""
    header = _cells(line) if line.lstrip().startswith("|") else []
    if not all(c in header for c in COLUMNS):
        return None
    return next((v for v in ("verdict (raw)", "verdict") if v in header), None)


def parse_claims(text: str, source: str = "page") -> list[dict]:
    """The rows of the first table whose header holds :data:`COLUMNS` and a verdict column
    ("verdict" or "verdict (raw)"): claim, head, vs, n, mean, low, high, raw verdict, and the
    rounding unit of the printed numbers."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if _verdict_column(line)), None)
    if start is None:
        raise DataError(f"{source}: no table with the columns {', '.join(COLUMNS)}, verdict")
    header, verdict = _cells(lines[start]), _verdict_column(lines[start])
    where = {name: header.index(name) for name in (*COLUMNS, verdict)}
    rows = []
    for number, line in enumerate(lines[start + 2 :], start + 3):
        if not line.lstrip().startswith("|"):
            break
        cells = _cells(line)
        if len(cells) != len(header):
            raise DataError(f"{source}:{number}: {len(cells)} cells, the header has {len(header)}")
        match = _INTERVAL.match(cells[where[DIFFERENCE]])
        pairs = cells[where["pairs"]]
        if not match or not pairs.isdigit() or cells[where[verdict]] not in VERDICTS:
            raise DataError(
                f"{source}:{number}: expected 'mean [low, high]', an integer pair count and a "
                f"verdict of {', '.join(VERDICTS)}"
            )
        rows.append(
            {
                "claim": cells[where["claim"]],
                "head": cells[where["head"]],
                "vs": cells[where["vs"]],
                "n": int(pairs),
                "mean": float(match.group(1)),
                "low": float(match.group(3)),
                "high": float(match.group(4)),
                "unit": 10.0 ** -len(match.group(2) or ""),
                "text": cells[where[DIFFERENCE]],
                "verdict": cells[where[verdict]],
            }
        )
    if not rows:
        raise DataError(f"{source}:{start + 1}: the claims table has no rows")
    return rows


def higher_is_better(claim: str) -> bool:
    """The claimed direction of a claim label (the study's CLAIMS; TAR at any FAR: higher)."""
    for label, _, higher in CLAIMS:
        if claim == label:
            return higher
    if claim.startswith("(5) open set, TAR@FAR="):
        return True
    raise DataError(f"claim {claim!r}: not one of the study's claims")


def p_from_interval(mean: float, low: float, high: float, n: int) -> float | None:
    """Two-sided p of the paired t test whose 95 % t interval (n − 1 df) is [low, high]; None
    when n < 2 or the interval has no width."""
    if n < 2 or high <= low:
        return None
    error = (high - low) / 2 / scipy_stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1)
    return float(2.0 * scipy_stats.t.sf(abs(mean) / error, n - 1))


def _p_shifted(row: dict, shift: float) -> float | None:
    """p with |mean| moved by ``shift`` half units and the interval's width by −``shift``
    units: 1.0 gives the smallest p the rounded numbers allow, −1.0 the largest."""
    half_unit = shift * row["unit"] / 2
    mean = max(abs(row["mean"]) + half_unit, 0.0)
    return p_from_interval(mean, row["low"] + half_unit, row["high"] - half_unit, row["n"])


def rejudge(rows: list[dict]) -> list[dict]:
    """Per row: p, Holm-adjusted p over all rows, the adjusted verdict, and ``rounding`` True
    when the adjusted verdict could differ within the printed rounding (Holm's adjusted p is
    monotone in every raw p, so all-smallest and all-largest raw p's bracket it)."""
    signs = [1.0 if higher_is_better(r["claim"]) else -1.0 for r in rows]
    p = [p_from_interval(r["mean"], r["low"], r["high"], r["n"]) for r in rows]
    bounds = [holm([_p_shifted(r, shift) for r in rows]) for shift in (1.0, -1.0)]
    out = []
    for row, sign, raw, adjusted, low, high in zip(rows, signs, p, holm(p), *bounds, strict=True):
        verdict = adjusted_verdict(row["verdict"], row["mean"], adjusted, sign)
        edges = {adjusted_verdict(row["verdict"], row["mean"], q, sign) for q in (low, high)}
        out.append(
            {
                **row,
                "p": raw,
                "p_adjusted": adjusted,
                "adjusted_verdict": verdict,
                "rounding": len(edges) > 1,
            }
        )
    return out


def _p(value: float | None) -> str:
    return "—" if value is None else f"{value:.2g}" if value < 0.001 else f"{value:.3f}"


def markdown(judged: list[dict]) -> str:
    """The table with raw and adjusted verdicts (claims.md's columns), then the counts."""
    lines = [
        f"| claim | head | vs | pairs | {DIFFERENCE} | p | verdict (raw) | Holm-adjusted p "
        "| verdict (adjusted) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in judged:
        flag = " (within rounding of 0.05)" if r["rounding"] else ""
        lines.append(
            f"| {r['claim']} | {r['head']} | {r['vs']} | {r['n']} | {r['text']} | {_p(r['p'])} "
            f"| {r['verdict']} | {_p(r['p_adjusted'])} | {r['adjusted_verdict']}{flag} |"
        )
    for key, name in (("verdict", "raw"), ("adjusted_verdict", "adjusted")):
        counts = Counter(r[key] for r in judged)
        lines.append(
            f"\n{name} ({len(judged)} tests): "
            + ", ".join(f"{counts[v]} {v}" for v in VERDICTS if counts[v])
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Print the rejudged table; one-line error and status 2 on a bad page."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("page", nargs="?", type=Path, default=PAGE, help="markdown page")
    args = parser.parse_args(argv)
    try:
        try:
            text = args.page.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"{args.page}: cannot read ({exc.strerror or exc})") from None
        judged = rejudge(parse_claims(text, str(args.page)))
    except FacebenchError as exc:
        print(f"rejudge_results: error: {exc}", file=sys.stderr)
        return 2
    print(markdown(judged), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
