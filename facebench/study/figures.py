"""The study's report readable without JSON: report.md with the claims, a forest plot of the
paired differences and the per-head training-loss curves (matplotlib Agg, through
:mod:`facebench.report.figures`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facebench import schema
from facebench.fileio import write_text
from facebench.report.figures import _figure, loss_figure, save_figure

FOREST = "claims_forest.png"
LOSSES = "loss_curves.png"
#: colour of each adjusted verdict in the forest plot
VERDICT_COLOURS = {
    "held": "tab:green",
    "reversed": "tab:red",
    "not resolved": "tab:gray",
    "not judged": "tab:orange",
}


def forest_rows(claims: list[dict], labels: dict) -> list[dict]:
    """One row per claim test, in the claims' order: its label, and the paired difference in
    the claimed direction (positive: as claimed) with its 95 % interval (None: no pairs)."""
    rows = []
    for c in claims:
        sign = 1.0 if c["higher_is_better"] else -1.0
        d = c["difference"]
        low = high = None
        if d is not None and d["low"] is not None:
            low, high = sorted((sign * d["low"], sign * d["high"]))
        rows.append(
            {
                "label": f"{c['claim']}: {labels[c['better']]} vs {labels[c['other']]}",
                "mean": None if d is None else sign * d["mean"],
                "low": low,
                "high": high,
                "verdict": c["adjusted_verdict"],
            }
        )
    return rows


def plot_forest(rows: list[dict], path: Path) -> str:
    """Each row's difference and interval on a line of its own, coloured by its adjusted verdict,
    with the no-difference line at 0."""
    fig, ax = _figure(9.0, 1.0 + 0.28 * max(1, len(rows)))
    fig.subplots_adjust(left=0.55, right=0.98, bottom=0.6 / (1.0 + 0.28 * len(rows)), top=0.97)
    for y, row in enumerate(rows):
        if row["mean"] is None:
            continue
        colour = VERDICT_COLOURS.get(row["verdict"], "black")
        if row["low"] is not None:
            ax.plot([row["low"], row["high"]], [y, y], color=colour, linewidth=2)
        ax.plot([row["mean"]], [y], "o", color=colour, markersize=4)
    ax.axvline(0.0, color="black", linewidth=0.8)
    ax.set_yticks(np.arange(len(rows)))
    ax.set_yticklabels([r["label"] for r in rows], fontsize=7)
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.set_xlabel("difference, claimed direction (> 0: as claimed), 95 % CI")
    ax.grid(True, axis="x", alpha=0.3)
    return save_figure(fig, str(path))


def loss_curves(heads, table: list, results: dict) -> tuple[dict, dict]:
    """Per head label: the mean training loss per epoch over its table runs' seeds (those with
    the most epochs), and whether every one of them ended on its plateau."""
    curves, plateaued = {}, {}
    for head in heads:
        done = [results[r.key] for r in table if r.head.key == head.key and r.key in results]
        losses = [r["convergence"][schema.EPOCH_LOSSES] for r in done if r.get("convergence")]
        if not losses:
            continue
        longest = max(len(x) for x in losses)
        curves[head.label] = np.mean([x for x in losses if len(x) == longest], axis=0).tolist()
        plateaued[head.label] = all(bool(r.get(schema.CONVERGED)) for r in done)
    return curves, plateaued


def write_readable(
    out: Path, table_md: str, claims_md: str, claims: list, labels: dict, heads, table, results
) -> None:
    """report.md with the table, the forest plot, the claims and the loss curves."""
    plot_forest(forest_rows(claims, labels), out / FOREST)
    parts = ["# Study report", "", "## Per-head results (mean ± 95 % half-width)", "", table_md]
    parts += [
        "## Claims: paired differences",
        "",
        f"![paired differences, coloured by the adjusted verdict]({FOREST})",
        "",
        "Green: held, red: reversed, grey: not resolved, orange: not judged (Holm-adjusted).",
        "",
        claims_md,
    ]
    curves, plateaued = loss_curves(heads, table, results)
    if curves:
        loss_figure(curves, plateaued, str(out / LOSSES))
        parts += [
            "## Training loss per head (mean over seeds)",
            "",
            f"![loss curves]({LOSSES})",
            "",
        ]
    write_text(out / "report.md", "\n".join(parts))
