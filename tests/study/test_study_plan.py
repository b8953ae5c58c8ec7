"""facebench.study: heads and grids, the run plan, the tuning rule, recipes of runs."""

from pathlib import Path

import pytest

from facebench.errors import ConfigError
from facebench.study import plan
from facebench.study.heads import DEFAULT_HEADS, GRID_SIZE, SWEEP_SCALES, select_heads
from facebench.study.runs import LR_DROPS, Run, run_epochs, run_recipe

BASE = Path(__file__).resolve().parents[2] / "recipes" / "fashion_mnist" / "base.yaml"
HEADS = {h.key: h for h in DEFAULT_HEADS}


def test_every_head_gets_the_same_tuning_budget_and_gamma_only_where_it_scales():
    for head in DEFAULT_HEADS:
        grid = head.grid()
        assert len(grid) == GRID_SIZE == len({(p["lr"], p["scale"]) for p in grid})
        scaled = head.key in {"normsoftmax", "bce_u_norm", "cosface", "bce_u_margin", "sphereface2"}
        assert all((p["scale"] is not None) == scaled for p in grid)


def test_select_heads_by_study_key_or_registered_name():
    assert select_heads(None) == DEFAULT_HEADS
    picked = select_heads("bce_u_norm, arcface")
    assert [h.key for h in picked] == ["bce_u_norm", "arcface"]
    assert picked[1].head == "arcface" and picked[1].has_scale()
    with pytest.raises(ConfigError, match="unknown head 'nope'"):
        select_heads("softmax,nope")
    with pytest.raises(ConfigError, match="each head once"):
        select_heads("softmax,softmax")


def _tuned(head, scores):
    """Tuning results: grid point i -> (validation accuracy, converged)."""
    out = {}
    for point, (accuracy, converged) in zip(head.grid(), scores, strict=True):
        run = Run(head, "tune", plan.TUNING_SEED, point["lr"], point["scale"])
        out[run.key] = {"sample_accuracy": accuracy, "converged": converged}
    return out


def test_selection_takes_the_best_converged_point_first_of_equals():
    head = HEADS["bce_u_norm"]
    results = _tuned(head, [(0.80, True), (0.95, False), (0.85, True), (0.85, True)])
    chosen = plan.select_settings((head,), results)["bce_u_norm"]
    assert (chosen["lr"], chosen["scale"]) == (head.grid()[2]["lr"], head.grid()[2]["scale"])
    assert chosen["tuned_on_converged_run"] and chosen["validation_sample_accuracy"] == 0.85


def test_selection_falls_back_to_unconverged_and_marks_it():
    head = HEADS["softmax"]
    results = _tuned(head, [(0.5, False), (None, False), (0.7, False), (0.6, False)])
    chosen = plan.select_settings((head,), results)["softmax"]
    assert chosen["lr"] == head.grid()[2]["lr"] and not chosen["tuned_on_converged_run"]


def test_table_is_planned_seed_by_seed_and_the_sweep_reuses_its_runs():
    heads = (HEADS["softmax"], HEADS["normsoftmax"], HEADS["bce_u_norm"])
    settings = {h.key: {"lr": 0.1, "scale": None if h.key == "softmax" else 64.0} for h in heads}
    table = plan.table_runs(heads, settings, seeds=3)
    assert [r.seed for r in table] == [0] * 6 + [1] * 6 + [2] * 6
    sweep = plan.sweep_runs(heads, settings, seeds=2)
    assert len(sweep) == 2 * 2 * len(SWEEP_SCALES)
    runs = plan.unique(table + sweep)
    # gamma 64 of seeds 0 and 1 are the table's own closed runs
    assert len(runs) == len(table) + len(sweep) - 2 * 2
    assert len({r.key for r in runs}) == len(runs)


def test_a_head_trains_only_its_own_tasks():
    heads = (HEADS["bce_u_norm"], HEADS["sphereface2"])
    settings = {h.key: {"lr": 0.1, "scale": 32.0} for h in heads}
    table = plan.table_runs(heads, settings, seeds=2)
    tasks = {(r.head.key, r.task) for r in table}
    assert tasks == {("bce_u_norm", "closed"), ("bce_u_norm", "open"), ("sphereface2", "closed")}
    assert len(table) == 2 * 3


def test_grid_points_cut_the_grid_for_smoke_runs():
    runs = plan.tuning_runs(DEFAULT_HEADS, points=2)
    assert len(runs) == 2 * len(DEFAULT_HEADS)


def test_run_recipe_sets_head_settings_seed_and_milestones():
    run = Run(HEADS["bce_u_margin"], "open", 3, 0.025, 32.0)
    recipe = run_recipe(run, BASE, epochs=10.0)
    assert recipe.head.name == "bce_u" and recipe.head.params["margin"] == 0.4
    assert recipe.head.params["scale"] == 32.0 and recipe.optim.lr == 0.025
    assert recipe.train.seed == 3 and recipe.data.train == "open/train"
    assert recipe.schedule.milestones == [10.0 * f for f in LR_DROPS]
    assert run.key == "bce_u_margin-open-lr0.025-g32-s3"


def test_a_small_training_set_trains_more_epochs_to_the_minimum_image_count():
    assert run_epochs(5.0, 60_000, 100_000) == 5.0  # Fashion-MNIST: 300,000 images
    assert run_epochs(5.0, 20_000, 100_000) == 5.0  # exactly the minimum
    assert run_epochs(5.0, 8_500, 100_000) == 12.0  # 102,000 images, whole epochs
    assert run_epochs(2.0, 600, 1) == 2.0
