"""torchrun with 2 gloo processes equals one process with the same global batch; a checkpoint
saved by 2 processes resumes on 1. Both train in float64 (tests/train/float64.py): the two paths
sum gradients in another order, and float32 rounding grows too much over 6 steps to compare."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from facebench.train import train

sys.path.insert(0, str(Path(__file__).parent))
from float64 import train_in_float64

FLOAT64_CLI = Path(__file__).with_name("float64.py")

# 6 steps of 16 images; one process splits each step into 2 micro-batches of 8, the same 8
# images each of the 2 processes reads, so BatchNorm sees the same batches in both runs.
SETS = ["train.max_steps=6", "train.checkpoint_every=3", "head.params.sample_ratio=1.0"]


def _logged_losses(run_dir):
    lines = [json.loads(x) for x in (run_dir / "log.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in lines if "bin" not in r}


def _torchrun(recipe_file, data_root, out, sets):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    cmd += [str(FLOAT64_CLI), "train", str(recipe_file), "--data", str(data_root)]
    cmd += ["--out", str(out), "--no-progress"]
    for item in sets:
        cmd += ["--set", item]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]


def test_two_processes_equal_one_and_resume_on_one(recipe_file, data_root, tmp_path):
    # float64 rounding (1e-16) grown 2000x over 6 steps stays below 1e-12: rtol=1e-9 allows it
    # and catches any real difference
    undo = train_in_float64()
    try:
        _two_processes_equal_one_and_resume_on_one(recipe_file, data_root, tmp_path)
    finally:
        undo()


def _two_processes_equal_one_and_resume_on_one(recipe_file, data_root, tmp_path):
    two = tmp_path / "two"
    _torchrun(recipe_file, data_root, two, SETS)
    one = train(
        recipe_file,
        tmp_path / "one",
        data_root=data_root,
        overrides=[*SETS, "train.accumulation=2"],
        progress=False,
    )
    logged = _logged_losses(two)
    assert sorted(logged) == [1, 2, 3, 4, 5, 6]
    np.testing.assert_allclose([logged[s] for s in range(1, 7)], one.losses, rtol=1e-9)
    # the head's full state, gathered from 2 slices, ends up the same
    a = torch.load(two / "model.pt", weights_only=True)["head"]["state_dict"]
    b = torch.load(tmp_path / "one" / "model.pt", weights_only=True)["head"]["state_dict"]
    for key, value in a.items():
        torch.testing.assert_close(value, b[key], rtol=1e-9, atol=1e-12)

    # resume the 2-process checkpoint of step 3 on one process (2 micro-batches per step)
    cut = tmp_path / "cut"
    (cut / "checkpoints").mkdir(parents=True)
    shutil.copy(two / "checkpoints" / "step_00000003.pt", cut / "checkpoints")
    resumed = train(
        recipe_file,
        cut,
        data_root=data_root,
        overrides=[*SETS, "train.accumulation=2"],
        resume=True,
        progress=False,
    )
    assert resumed.start_step == 3
    np.testing.assert_allclose(resumed.losses, [logged[s] for s in (4, 5, 6)], rtol=1e-9)
