"""The quickstart's training is bit-identical across runs and whether a head trains in this
process or in a spawned worker (one intra-op thread, deterministic algorithms), on one machine
and kernel set: the workers inherit this process's CPU and ATEN_CPU_CAPABILITY; another CPU or
kernel set gives other last bits (docs/reproducibility.md)."""

import json

import torch

from facebench.runs import map_runs, reproducible_threads, train_to_plateau
from facebench.train.convergence import PLATEAU_TOLERANCE


def _train(task):
    recipe, run_dir, data_root = task
    with reproducible_threads(1):
        train_to_plateau(recipe, run_dir, data_root)
    return torch.get_num_threads()


def _weights(run_dir):
    model = torch.load(run_dir / "model.pt", weights_only=False)
    return {**model["state_dict"], **model["head"]["state_dict"]}


def test_runs_are_bit_identical_in_process_and_in_workers(tmp_path, data_root, recipe_file):
    runs = [tmp_path / name for name in ("here", "worker_a", "worker_b")]
    threads_before = torch.get_num_threads()
    map_runs(_train, [(recipe_file, runs[0], data_root)], workers=1, threads=1)
    assert torch.get_num_threads() == threads_before  # the thread setting is restored
    map_runs(_train, [(recipe_file, run, data_root) for run in runs[1:]], workers=2, threads=1)
    reference = _weights(runs[0])
    training = (runs[0] / "reports" / "training.json").read_text()
    for run in runs[1:]:
        weights = _weights(run)
        assert all(torch.equal(reference[k], weights[k]) for k in reference)
        assert (run / "reports" / "training.json").read_text() == training
        assert (run / "reports" / "val.json").read_bytes() == (
            runs[0] / "reports" / "val.json"
        ).read_bytes()
    report = json.loads(training)
    losses = report["epoch_losses"]
    assert len(losses) == 3 and report["steps_per_epoch"] == 4  # 64 images, batch 16
    change = abs(losses[-1] - losses[-2]) / losses[-2]
    assert report["plateau"]["converged"] == (change <= PLATEAU_TOLERANCE)


def test_reproducible_threads_restores_settings():
    before = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    with reproducible_threads(1):
        assert torch.get_num_threads() == 1 and torch.are_deterministic_algorithms_enabled()
    assert (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()) == before
