"""Pieces of benchmarks/uniform_study.py: feature geometry, thresholds, run plan, table, figure."""

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from facebench.eval.uniform import uniform_metrics
from facebench.heads import build_head

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "uniform_study.py"
spec = importlib.util.spec_from_file_location("uniform_study", SCRIPT)
study = importlib.util.module_from_spec(spec)
sys.modules["uniform_study"] = study  # dataclasses look their module up
spec.loader.exec_module(study)


def _cos(a, b):
    return sum(x * y for x, y in zip(a, b, strict=True)) / math.sqrt(
        sum(x * x for x in a) * sum(y * y for y in b)
    )


def test_feature_geometry_against_loops():
    rng = np.random.default_rng(0)
    labels = np.array([2, 0, 2, 1, 0, 1, 1, 2])
    features = rng.normal(size=(8, 5)) + 2 * np.eye(5)[labels]
    got = study.feature_geometry(features, labels)
    centres = {}
    for c in (0, 1, 2):
        members = [f / np.linalg.norm(f) for f, y in zip(features, labels, strict=True) if y == c]
        centres[c] = [sum(m[j] for m in members) / len(members) for j in range(5)]
    intra = sum(_cos(f, centres[y]) for f, y in zip(features, labels, strict=True)) / 8
    inter = [_cos(centres[a], centres[b]) for a in (0, 1, 2) for b in (0, 1, 2) if a != b]
    assert got["intra_class_cosine"] == pytest.approx(intra)
    assert got["inter_class_cosine_mean"] == pytest.approx(sum(inter) / len(inter))
    assert got["inter_class_cosine_max"] == pytest.approx(max(inter))


def test_identical_classes_are_not_separated():
    features = np.array([[1.0, 0.0], [2.0, 0.0], [3.0, 0.0], [1.0, 0.0]])
    got = study.feature_geometry(features, np.array([0, 0, 1, 1]))
    assert got["intra_class_cosine"] == pytest.approx(1.0)
    assert got["inter_class_cosine_max"] == pytest.approx(1.0)


def _bias_free_t_star(head, x, labels):
    """t* computed on gamma.cos (or w.x) without any bias, in cosine units: the reference."""
    w = head.weight.detach()
    if head.normalized:
        values = torch.nn.functional.normalize(x) @ torch.nn.functional.normalize(w).T
    else:
        values = x @ w.T
    return uniform_metrics(values.numpy() * head.scale, labels)["uniform_threshold"] / head.scale


@pytest.mark.parametrize(
    ("name", "params"),
    [("bce_u", {"scale": 32.0}), ("bce_u", {"normalized": False}), ("normsoftmax", {})],
)
def test_t_star_is_in_the_units_of_the_learned_threshold(name, params):
    torch.manual_seed(0)
    head = build_head(name, 6, 4, **params)
    if head.bias is not None:
        with torch.no_grad():
            head.bias.fill_(7.0)
    labels = np.arange(40) % 4
    x = torch.randn(40, 6) + 3 * head.weight.detach()[labels] / head.weight.detach()[labels].norm(
        dim=1, keepdim=True
    )
    has_bias = head.bias is not None
    uniform = uniform_metrics(
        head.scores(x).numpy(), labels, learned_threshold=0.0 if has_bias else None
    )
    got = study.threshold_report(uniform, head)
    # the same uniform accuracy without the bias: a unified bias only shifts every score
    assert got["t_star"] == pytest.approx(_bias_free_t_star(head, x, labels), abs=1e-4)
    if has_bias:
        assert got["learned_threshold"] == pytest.approx(7.0 / head.scale)
    else:
        assert got["learned_threshold"] is None


def test_per_class_biases_are_not_reported_as_a_threshold():
    softmax = build_head("softmax", 4, 3)
    bce_d = build_head("bce_d", 4, 3, normalized=False)
    with torch.no_grad():
        bce_d.bias.copy_(torch.tensor([1.0, 2.0, 6.0]))
    uniform = {"uniform_threshold": 0.5, "uniform_accuracy_at_learned_threshold": None}
    for head in (softmax, bce_d):
        got = study.threshold_report(uniform, head)
        assert got["learned_threshold"] is None and got["t_star"] == pytest.approx(0.5)


def test_mean_std_uses_sample_std_and_skips_missing():
    assert study.mean_std([1.0, 2.0, None, 3.0]) == pytest.approx((2.0, 1.0))
    assert study.mean_std([5.0]) == (5.0, 0.0)
    assert study.mean_std([None]) is None


def test_every_run_the_reports_read_is_planned_once():
    table, sweep = study.plan_runs(seeds=3, sweep_seeds=2)
    keys = [run.key for run in table + sweep]
    assert len(keys) == len(set(keys)) == 7 * 2 * 3 + 2 * 4 * 2
    for _, recipe in study.SWEEP:
        for gamma in study.GAMMAS:
            for seed in range(2):
                assert study.sweep_key(recipe, gamma, seed) in keys
    for _, recipe in study.HEADS:
        assert (study.RECIPES / recipe).is_file()
    overrides = {run.key: run.overrides for run in sweep}
    assert overrides["bce_u_norm-closed-g192-s1"] == ("head.params.scale=192.0",)


def _fake_results(seeds):
    results = {}
    for i, (_, recipe) in enumerate(study.HEADS):
        stem = Path(recipe).stem
        for seed in range(seeds):
            results[f"{stem}-closed-s{seed}"] = {"uniform_accuracy": 0.5 + i / 100 + seed / 10}
            results[f"{stem}-open-s{seed}"] = {"verification_global_accuracy": 0.9}
    return results


def test_summary_and_markdown_table():
    rows = study.summarize(_fake_results(3), seeds=3)
    assert [row["head"] for row in rows] == [label for label, _ in study.HEADS]
    assert rows[1]["uniform_accuracy"] == pytest.approx((0.61, 0.1))
    assert rows[0]["verification_global_accuracy"] == pytest.approx((0.9, 0.0))
    assert rows[0]["t_star"] is None
    text = study.markdown_table(rows)
    lines = text.strip().splitlines()
    assert len(lines) == 2 + len(study.HEADS)
    assert all(line.count("|") == len(study.METRICS) + 2 for line in lines)
    assert "0.6100 ± 0.1000" in lines[3] and "—" in lines[3]


def test_sweep_figure_is_written(tmp_path):
    results = {}
    for _, recipe in study.SWEEP:
        for gamma in study.GAMMAS:
            results[study.sweep_key(recipe, gamma, 0)] = {
                "uniform_accuracy": gamma / 200,
                "sample_accuracy": 0.9,
            }
    points = study.sweep_points(results, 1)
    assert [p[0] for p in points[study.SWEEP[0][0]]["uniform_accuracy"]] == [
        g / 200 for g in study.GAMMAS
    ]
    study.plot_sweep(points, tmp_path / "sweep.png")
    assert (tmp_path / "sweep.png").read_bytes()[:4] == b"\x89PNG"
    assert [p.name for p in tmp_path.iterdir()] == ["sweep.png"]


@pytest.mark.parametrize(
    ("bce", "soft", "higher", "expected"),
    [
        ((0.80, 0.01), (0.70, 0.02), True, "held"),
        ((0.70, 0.01), (0.80, 0.02), True, "reversed"),
        ((0.71, 0.02), (0.70, 0.01), True, "within noise"),
        ((0.20, 0.01), (0.50, 0.01), False, "held"),  # lower inter-class cosine is better
    ],
)
def test_verdict(bce, soft, higher, expected):
    assert study.verdict(bce, soft, higher) == expected


def test_claims_table_sets_each_bce_head_against_its_softmax():
    rows = study.summarize(_fake_results(3), seeds=3)
    lines = study.claims_markdown(rows).strip().splitlines()
    # fake results hold uniform accuracy (closed) and global verification accuracy (open) only
    assert len(lines) == 2 + 2 * len(study.COMPARISONS)
    first = lines[2].split(" | ")
    assert first[0] == "| L_bce-u" and first[1] == "L_soft" and first[2] == "uniform acc"
    assert first[5] == "+0.0100" and first[6] == "within noise |"
