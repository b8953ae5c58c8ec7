"""facebench.study: heads and grids, the run plan, the tuning rule, recipes of runs."""

# pytest.approx's default (rel 1e-6) compares float64 arithmetic of a few terms (rounding
# about 1e-16 relative): it checks the formula, not rounding.
import math
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
    run = Run(HEADS["bce_u_margin"], "open", 3, 0.025, 32.0, partition=3)
    recipe = run_recipe(run, BASE, epochs=10.0)
    assert recipe.head.name == "bce_u" and recipe.head.params["margin"] == 0.4
    assert recipe.head.params["scale"] == 32.0 and recipe.optim.lr == 0.025
    assert recipe.train.seed == 3 and recipe.data.train == "open/p3/train"
    assert recipe.schedule.milestones == [10.0 * f for f in LR_DROPS]
    assert run.key == "bce_u_margin-open-lr0.025-g32-s3-p3"
    assert run.paths()[1] == "open/p3/heldout.bin"


def test_open_runs_pair_seed_i_with_partition_i():
    heads = (HEADS["softmax"], HEADS["bce_u"], HEADS["sphereface2"])
    settings = {h.key: {"lr": 0.1, "scale": None} for h in heads}
    table = plan.table_runs(heads, settings, seeds=5)
    opened = [r for r in table if r.task == "open"]
    assert len(opened) == 5 * 2  # 5 per head with an open task, not seeds x partitions
    assert all(r.partition == r.seed for r in opened)
    assert all(r.partition is None for r in table if r.task != "open")
    with pytest.raises(ValueError, match="partition"):
        Run(HEADS["softmax"], "open", 0, 0.1, None)


def test_a_small_training_set_trains_more_epochs_to_the_minimum_image_count():
    assert run_epochs(5.0, 60_000, 100_000) == 5.0  # Fashion-MNIST: 300,000 images
    assert run_epochs(5.0, 20_000, 100_000) == 5.0  # exactly the minimum
    assert run_epochs(5.0, 8_500, 100_000) == 12.0  # 102,000 images, whole epochs
    assert run_epochs(2.0, 600, 1) == 2.0


def _score_all(head, configs, score, seeds=2, budget=1.0):
    """Results for every config's tuning runs: accuracy score(config, seed), converged."""
    return {
        r.key: {"sample_accuracy": score(c, r.seed), "uniform_accuracy": 0.5, "converged": True}
        for c in configs
        for r in plan.config_runs(head, c, seeds, budget)
    }


def test_the_mean_over_tuning_seeds_decides():
    head = HEADS["softmax"]
    grid = head.grid()
    # seed 1000 favours lr 0.2 by a lot, seed 1001 favours 0.1 by more: the mean picks 0.1
    bias = {(0.2, 1000): 0.05, (0.1, 1001): 0.08}
    results = _score_all(head, grid, lambda c, s: 0.8 + bias.get((c["lr"], s), 0.0))
    chosen = plan.select_settings((head,), results, seeds=2)["softmax"]
    assert chosen["lr"] == 0.1 and chosen["validation_sample_accuracy"] == pytest.approx(0.84)


def test_an_edge_choice_extends_the_grid_until_interior_or_the_limit():
    head = HEADS["softmax"]  # lrs 0.2 .. 0.025
    peak = 0.0125 / 2  # best two steps below the grid
    score = lambda c, s: 0.9 - abs(math.log2(c["lr"] / peak)) / 100  # noqa: E731
    results = _score_all(head, head.grid(), score)
    first = plan.missing_tuning_runs((head,), results, None, 2, steps=3)
    assert {r.lr for r in first} == {0.0125} and len(first) == 2  # both seeds
    for _ in range(4):  # run whatever the rule asks for until it stops
        more = plan.missing_tuning_runs((head,), results, None, 2, steps=3)
        results.update(_score_all(head, [{"lr": r.lr, "scale": None} for r in more], score))
    chosen = plan.select_settings((head,), results, seeds=2, steps=3)["softmax"]
    assert chosen["lr"] == pytest.approx(peak) and chosen["edges"] == []  # interior
    limited = plan.select_settings((head,), results, seeds=2, steps=1)["softmax"]
    (edge,) = limited["edges"]  # stopped one step past the grid: the edge and its trend
    assert edge["side"] == "low" and edge["value"] == 0.0125 and edge["trend"] > 0


def test_the_gamma_sweep_retunes_the_lr_at_every_gamma():
    head = HEADS["bce_u_norm"]
    runs = plan.sweep_tuning_runs((head,), seeds=2)
    assert len(runs) == len(SWEEP_SCALES) * 2 * 2
    configs = {(r.lr, r.scale) for r in runs}
    results = _score_all(
        head,
        [{"lr": lr, "scale": g} for lr, g in configs],
        lambda c, s: 0.9 - (c["lr"] == 0.025) * (c["scale"] == 64.0) * 0.1,
    )
    lrs = plan.sweep_lrs(head, results, 2, {"lr": 0.025, "scale": 16.0})
    assert lrs == {"16": 0.025, "32": 0.025, "64": 0.0125}
    sweep = plan.sweep_runs(
        (head,), {"bce_u_norm": {"lr": 0.025, "scale": 16.0, "sweep_lr": lrs}}, 1
    )
    assert {(r.scale, r.lr) for r in sweep} == {(16.0, 0.025), (32.0, 0.025), (64.0, 0.0125)}


def test_budget_check_runs_reuse_the_tuning_runs_at_b():
    head = HEADS["softmax"]
    settings = {"softmax": {"lr": 0.05, "scale": None}}
    runs = plan.budget_check_runs((head,), settings, seeds=2)
    assert [r.budget for r in runs] == [1.0, 1.0, 2.0, 2.0]
    assert runs[0].key == "softmax-tune-lr0.05-s1000" and runs[2].key.endswith("-x2")
    recipe = run_recipe(runs[2], BASE, epochs=2 * 5.0)
    assert recipe.train.epochs == 10.0
