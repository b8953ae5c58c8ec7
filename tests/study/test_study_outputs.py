"""facebench.study.execute.write_outputs: the table holds each head at its chosen settings only."""

# pytest.approx's default (rel 1e-6) compares float64 arithmetic of a few terms (rounding
# about 1e-16 relative): it checks the formula, not rounding.
import json

import pytest

from facebench.study import execute, plan
from facebench.study.heads import DEFAULT_HEADS

HEADS = {h.key: h for h in DEFAULT_HEADS}


def test_sweep_runs_at_other_gammas_stay_out_of_the_table(tmp_path):
    heads = (HEADS["normsoftmax"], HEADS["bce_u_norm"])
    settings = {h.key: {"lr": 0.025, "scale": 16.0} for h in heads}
    table = plan.table_runs(heads, settings, seeds=2)
    runs = plan.unique(table + plan.sweep_runs(heads, settings, seeds=2))
    assert len(runs) > len(table)  # the sweep adds closed runs at γ 32 and 64
    # the chosen γ scores 0.9 (+ seed), every other γ 0.5: any mix-up moves the table's mean
    results = {
        r.key: {
            "sample_accuracy": (0.9 if r.scale == 16.0 else 0.5) + r.seed / 100,
            "uniform_accuracy": 0.8,
            "converged": True,
        }
        for r in runs
    }
    summary = {"settings": settings, "_started": 0.0}
    execute.write_outputs(tmp_path, summary, heads, table, runs, results)
    written = json.loads((tmp_path / "study.json").read_text())
    for row in written["table"]:
        assert row["sample_accuracy"]["mean"] == pytest.approx(0.905)
        assert row["closed_runs"] == 2
    sweep = written["gamma_sweep"]["bce_u_norm"]["sample_accuracy"]
    assert [p["mean"] for p in sweep] == pytest.approx([0.905, 0.505, 0.505])
