"""facebench.study.report: per-head intervals, paired claims, claim (3), Markdown and figure."""

# pytest.approx's default (rel 1e-6) compares float64 arithmetic of a few terms (rounding
# about 1e-16 relative): it checks the formula, not rounding.
import pytest

from facebench.study import plan, report
from facebench.study.heads import DEFAULT_HEADS, SWEEP_SCALES
from facebench.study.stats import BUDGET_METRICS, mean_interval

ALL_MOVED = {"bce_u": frozenset(BUDGET_METRICS)}  # a budget check that failed on both metrics

HEADS = {h.key: h for h in DEFAULT_HEADS}
PAIR = (HEADS["softmax"], HEADS["bce_u"])
SETTINGS = {"softmax": {"lr": 0.1, "scale": None}, "bce_u": {"lr": 0.05, "scale": None}}


def _results(runs, converged=True):
    """Fake measurements: bce_u beats softmax by 0.10 (+ seed noise) in uniform accuracy, ties
    in sample-wise accuracy up to seed noise, and thresholding at b costs 0.002 exactly."""
    out = {}
    for run in runs:
        bce = run.head.key == "bce_u"
        noise = (-0.01, 0.0, 0.012)[run.seed]
        if run.task == "closed":
            values = {
                "uniform_accuracy": 0.5 + 0.1 * bce + noise,
                "sample_accuracy": 0.9 + noise * (1 if bce else -1),
                "t_star": 0.30 + noise,
                "decision_point": 0.32 + noise / 2 if bce else None,
                "uniform_accuracy_at_decision_point": 0.598 + noise if bce else None,
                "score_spread": 0.5,
            }
        else:
            values = {"verification_global_accuracy": 0.8}
        out[run.key] = {**values, "converged": converged}
    return out


def test_summary_intervals_and_convergence_counts():
    runs = plan.table_runs(PAIR, SETTINGS, seeds=3)
    rows = report.summarize(PAIR, _results(runs), runs)
    soft = rows[0]
    assert soft["uniform_accuracy"] == pytest.approx(mean_interval([0.49, 0.5, 0.512]))
    assert soft["closed_runs"] == soft["closed_converged"] == 3 and soft["open_runs"] == 3
    assert soft["decision_point"] is None
    text = report.table_markdown(rows, SETTINGS)
    lines = text.strip().splitlines()
    assert len(lines) == 4 and all(line.count("|") == len(report.METRICS) + 5 for line in lines)
    assert "| L_soft | 0.1 | — | 3/3, 3/3 |" in lines[2]


def test_claims_are_paired_by_seed():
    runs = plan.table_runs(PAIR, SETTINGS, seeds=3)
    claims = {c["metric"]: c for c in report.judge_claims(PAIR, _results(runs), runs)}
    # the seed noise is shared by both heads: the paired difference is exactly +0.10
    assert claims["uniform_accuracy"]["verdict"] == "held"
    assert claims["uniform_accuracy"]["difference"]["mean"] == pytest.approx(0.1)
    # opposite noise: differences -0.02, 0, +0.024 straddle zero
    assert claims["sample_accuracy"]["verdict"] == "not resolved"
    assert claims["verification_global_accuracy"]["verdict"] == "not resolved"  # all equal
    assert "intra_class_cosine" not in claims or claims["intra_class_cosine"]["seeds"] == []


def test_unconverged_runs_leave_claims_unjudged():
    runs = plan.table_runs(PAIR, SETTINGS, seeds=3)
    claims = report.judge_claims(PAIR, _results(runs, converged=False), runs)
    assert {c["verdict"] for c in claims} == {"not judged"}


def test_a_closed_set_only_head_is_compared_on_closed_set_claims_only():
    pair = (HEADS["bce_u_norm"], HEADS["sphereface2"])
    settings = {h.key: {"lr": 0.1, "scale": 32.0} for h in pair}
    runs = plan.table_runs(pair, settings, seeds=3)
    results = {r.key: {"uniform_accuracy": 0.5, "converged": True} for r in runs}
    claims = report.judge_claims(pair, results, runs)
    closed = {m for m, _, task in report.METRICS if task == "closed"}
    assert claims and {c["metric"] for c in claims} <= closed
    assert {(c["better"], c["other"]) for c in claims} == {("bce_u_norm", "sphereface2")}


def test_threshold_claim_reads_the_distance_in_score_spreads():
    runs = plan.table_runs(PAIR, SETTINGS, seeds=3)
    results = _results(runs)
    (judged,) = report.judge_thresholds(PAIR, results, runs)
    # t* - point = -0.02 + noise / 2: per seed -0.025, -0.02, -0.014; 95 % interval about
    # [-0.033, -0.006], i.e. [-0.067, -0.012] spreads of 0.5: inside ±0.1
    assert judged["head"] == "bce_u" and judged["verdict"] == "at t*"
    assert judged["distance"]["mean"] == pytest.approx(-0.02 + 0.001 / 3)
    assert judged["distance_in_spreads"]["mean"] == pytest.approx((-0.02 + 0.001 / 3) / 0.5)
    assert judged["accuracy_cost"]["mean"] == pytest.approx(0.002)
    for spread, verdict in ((0.01, "not at t*"), (0.18, "not resolved")):
        for run in runs:
            results[run.key]["score_spread"] = spread
        assert report.judge_thresholds(PAIR, results, runs)[0]["verdict"] == verdict
    unjudged = report.judge_thresholds(PAIR, results, runs, unjudged=ALL_MOVED)
    assert unjudged[0]["verdict"] == "not judged"
    labels = {h.key: h.label for h in PAIR}
    text = report.claims_markdown(report.judge_claims(PAIR, _results(runs), runs), [judged], labels)
    assert "| (1) uniform accuracy | L_bce-u | L_soft | 3 | +0.1000 [" in text
    assert "| L_bce-u | 3 | -0.020 [" in text and "| at t* |" in text


def test_sweep_points_and_figure(tmp_path):
    heads = (HEADS["normsoftmax"], HEADS["bce_u_norm"])
    settings = {h.key: {"lr": 0.1, "scale": 64.0} for h in heads}
    runs = plan.sweep_runs(heads, settings, seeds=2)
    results = {
        r.key: {"uniform_accuracy": r.scale / 200 + r.seed / 100, "sample_accuracy": 0.9}
        for r in runs
    }
    points = report.sweep_points(heads, results, runs)
    means = [p["mean"] for p in points["bce_u_norm"]["uniform_accuracy"]]
    assert means == pytest.approx([g / 200 + 0.005 for g in SWEEP_SCALES])
    report.plot_sweep(points, {h.key: h.label for h in heads}, tmp_path / "sweep.png")
    assert (tmp_path / "sweep.png").read_bytes()[:4] == b"\x89PNG"
    assert [p.name for p in tmp_path.iterdir()] == ["sweep.png"]


def test_tuning_table_lists_finished_grid_points_only():
    head = HEADS["bce_u_norm"]
    runs = plan.tuning_runs((head,))
    results = {
        runs[0].key: {
            "sample_accuracy": 0.91,
            "uniform_accuracy": 0.7,
            "converged": True,
            "convergence": {"relative_change": -0.012},
            "train_seconds": 100.0,
            "train_cpu_seconds": 90.0,
            "train_images_per_cpu_s": 1500.0,
        },
        runs[2].key: {"error": "loss diverged", "train_seconds": 5.0},
    }
    lines = report.tuning_markdown((head,), runs, results).strip().splitlines()
    assert len(lines) == 4
    expected = "| L_bce-nu | 0.025 | 16 | 0.9100 | 0.7000 | yes | -1.20% | 100 | 90 | 1500 |"
    assert lines[2] == expected
    assert "error: loss diverged" in lines[3]


def test_the_family_is_declared_from_the_plan_and_holm_adjusts_over_all_of_it():
    family = report.declared_family(DEFAULT_HEADS)
    # 4 paper pairs x 9 metrics, and the 2 SphereFace2 pairs on the 5 closed-set metrics
    assert len(family) == 4 * len(report.CLAIMS) + 2 * 5
    assert len({(t["better"], t["other"], t["metric"]) for t in family}) == len(family)
    runs = plan.table_runs(PAIR, SETTINGS, seeds=3)
    results = _results(runs)
    # sample-wise: a consistent +0.010..0.012 gap with spread: p about 0.003, raw held; the
    # exact uniform gap (p = 0) ranks first, so Holm multiplies the sample-wise p by 9 - 1
    for run in runs:
        if run.task == "closed":
            bump = (0.010, 0.012, 0.011)[run.seed] if run.head.key == "bce_u" else 0.0
            results[run.key]["sample_accuracy"] = 0.9 + bump
    claims = {c["metric"]: c for c in report.judge_claims(PAIR, results, runs)}
    assert len(claims) == len(report.CLAIMS)
    sample = claims["sample_accuracy"]
    assert sample["verdict"] == "held"
    assert sample["p_adjusted"] == pytest.approx(8 * sample["p_value"], rel=1e-9)
    assert sample["adjusted_verdict"] == "held"  # 8 x 0.0027 < 0.05
    for run in runs:  # a 4x smaller gap with the same spread pattern: held raw, not after Holm
        if run.task == "closed" and run.head.key == "bce_u":
            results[run.key]["sample_accuracy"] = 0.9 + (0.0025, 0.0045, 0.0035)[run.seed]
    sample = next(
        c for c in report.judge_claims(PAIR, results, runs) if c["metric"] == "sample_accuracy"
    )
    assert sample["verdict"] == "held" and sample["p_value"] > 0.05 / 8
    assert sample["adjusted_verdict"] == "not resolved"
    assert claims["uniform_accuracy"]["adjusted_verdict"] == "held"  # p = 0 (exact +0.10)
    unjudged = report.judge_claims(PAIR, results, runs, unjudged=ALL_MOVED)
    assert {c["adjusted_verdict"] for c in unjudged} == {"not judged"}
    labels = {h.key: h.label for h in PAIR}
    text = report.claims_markdown(report.judge_claims(PAIR, results, runs), [], labels)
    assert "Holm's correction over the 9 declared tests" in text


def test_a_head_whose_uniform_accuracy_moved_is_judged_on_sample_wise_accuracy_only():
    runs = plan.table_runs(PAIR, SETTINGS, seeds=3)
    results = _results(runs)
    moved = {"softmax": frozenset({"uniform_accuracy"})}
    claims = {c["metric"]: c for c in report.judge_claims(PAIR, results, runs, unjudged=moved)}
    assert claims["sample_accuracy"]["verdict"] != "not judged"
    others = {m: c["verdict"] for m, c in claims.items() if m != "sample_accuracy"}
    assert set(others.values()) == {"not judged"}, others  # uniform and every unchecked metric
    (threshold,) = report.judge_thresholds(PAIR, results, runs, unjudged=moved)
    assert threshold["verdict"] != "not judged"  # L_soft has no decision point; bce_u held
    moved_bce = {"bce_u": frozenset({"uniform_accuracy"})}
    (threshold,) = report.judge_thresholds(PAIR, results, runs, unjudged=moved_bce)
    assert threshold["verdict"] == "not judged"


def test_budget_table_names_the_metric_that_moved():
    change = {"mean": 0.0, "low": -0.001, "high": 0.001}
    budgets = {
        "bce_u": {
            "seeds": [0, 1],
            "changes": dict.fromkeys(BUDGET_METRICS, change),
            "failed": [],
            "converged": True,
        },
        "softmax": {
            "seeds": [0, 1],
            "changes": dict.fromkeys(BUDGET_METRICS, change),
            "failed": ["uniform_accuracy"],
            "converged": False,
        },
        "cosface": {
            "seeds": [0],
            "changes": dict.fromkeys(BUDGET_METRICS, change),
            "failed": list(BUDGET_METRICS),
            "converged": False,
        },
    }
    labels = {"bce_u": "L_bce-u", "softmax": "L_soft", "cosface": "CosFace"}
    text = report.budget_markdown(budgets, labels)
    assert "| L_bce-u | 2 |" in text and text.count("| yes |") == 1
    assert "| L_soft | 2 |" in text and "NO on uniform: judged on sample-wise accuracy only" in text
    assert "| CosFace | 1 |" in text and "NO: not judged" in text


def test_budget_effects_pair_the_heads_by_tuning_seed_at_each_budget():
    """The effect of a comparison at B and at 2B on the budget-check runs: bce_u's uniform lead
    over softmax is +0.20 at B and +0.10 at 2B for both seeds (seed noise shared); its
    sample-wise lead is +0.01 and +0.03 at B (mean +0.02), and one 2B run is missing."""
    uniform = {("bce_u", 1.0): 0.80, ("softmax", 1.0): 0.60, ("bce_u", 2.0): 0.82}
    uniform[("softmax", 2.0)] = 0.72
    sample = {("bce_u", 0): 0.01, ("bce_u", 1): 0.03}
    results = {}
    for head in PAIR:
        for budget in (1.0, plan.BUDGET_FACTOR):
            for i, run in enumerate(plan.config_runs(head, SETTINGS[head.key], 2, budget)):
                if head.key == "softmax" and budget != 1.0 and i == 1:
                    continue  # the missing 2B run
                noise = 0.005 * i
                results[run.key] = {
                    "uniform_accuracy": uniform[head.key, budget] + noise,
                    "sample_accuracy": 0.9 + sample.get((head.key, i), 0.0) + noise,
                }
    rows = report.budget_effects(PAIR, SETTINGS, results, seeds=2)
    (row_sample,) = [r for r in rows if r["metric"] == "sample_accuracy"]
    (row_uniform,) = [r for r in rows if r["metric"] == "uniform_accuracy"]
    assert (row_uniform["better"], row_uniform["other"]) == ("bce_u", "softmax")
    assert row_uniform[1.0] == pytest.approx(mean_interval([0.2, 0.2]))
    assert row_uniform[plan.BUDGET_FACTOR]["n"] == 1
    assert row_uniform[plan.BUDGET_FACTOR]["mean"] == pytest.approx(0.1)
    assert row_sample[1.0] == pytest.approx(mean_interval([0.01, 0.03]))
    labels = {"bce_u": "L_bce-u", "softmax": "L_soft"}
    budgets = report.judge_budgets(PAIR, SETTINGS, results, seeds=2)
    text = report.budget_markdown(budgets, labels, rows)
    assert "| L_bce-u | L_soft | uniform | +0.2000 [+0.2000, +0.2000] | +0.1000 |" in text
    assert "| L_bce-u | L_soft | sample-wise | +0.0200 [" in text
