"""facebench.runs: the selection rule, resumable results, and no process outliving a runner
killed with SIGTERM while a worker trains (the quickstart, the study and the tuning script)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from facebench.data.idx_ubyte import write_idx
from facebench.runs import choose, stored_result

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}
#: Seconds the runner and its workers may take to be gone after the SIGTERM.
GRACE = 1.0


def test_choose_prefers_converged_runs_then_the_first_of_ties():
    assert choose([0.5, 0.9, 0.7], [True, False, True]) == 2  # 0.9 did not converge
    assert choose([0.5, 0.9, 0.7], [True, False, True], require_plateau=False) == 1
    assert choose([0.5, 0.7, 0.7], [True, True, True]) == 1  # the earlier of equals
    assert choose([0.5, 0.9], [False, False]) == 1  # none converged: the best of all
    assert choose([None, 0.4, None], [True, False, True]) == 1  # unscored runs never win
    assert choose([None, None], [True, True]) == 0


def test_a_stored_result_is_not_run_again_and_a_cut_short_run_starts_afresh(tmp_path):
    run_dir, calls = tmp_path / "run", []
    run_dir.mkdir()
    (run_dir / "half.pt").write_bytes(b"cut short")

    def run():
        calls.append(sorted(p.name for p in run_dir.iterdir()) if run_dir.exists() else None)
        return {"score": 0.5}

    path = run_dir / "result.json"
    assert stored_result(path, run_dir, run) == {"score": 0.5}
    assert stored_result(path, run_dir, run) == {"score": 0.5}
    assert calls == [None]  # run once, after the cut-short folder was cleared


def _group(pgid: int) -> list[int]:
    """Live (not zombie) processes of process group ``pgid``."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            alive.append(int(stat.parent.name))
    return alive


def _kill_while_a_worker_trains(command: list[str], root: Path, runs: str) -> None:
    """Start ``command`` in its own process group; once a worker has created a run folder
    (``runs``, a glob under ``root``), SIGTERM the parent: it and every worker are gone within
    GRACE seconds."""
    job = subprocess.Popen(
        command,
        cwd=REPO,
        env=ENV,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 300
        while not any(root.glob(runs)):
            assert job.poll() is None, job.stderr.read()
            assert time.monotonic() < deadline, "no run started"
            time.sleep(0.1)
        assert len(_group(job.pid)) > 1  # the parent and its workers
        job.send_signal(signal.SIGTERM)
        killed = time.monotonic()
        while _group(job.pid) and time.monotonic() < killed + GRACE:
            time.sleep(0.05)
        assert not _group(job.pid), "processes outlived the SIGTERM"
        assert job.wait() == 130  # interrupted, as Ctrl-C (facebench.cli.INTERRUPTED)
    finally:
        if _group(job.pid):
            os.killpg(job.pid, signal.SIGKILL)
        job.wait()


def _idx_set(root: Path) -> Path:
    """A 10-class idx set big enough for the study's --quick sizes."""
    rng = np.random.default_rng(0)
    root.mkdir()
    for split, per_class in (("train", 80), ("t10k", 40)):
        labels = np.repeat(np.arange(10, dtype=np.uint8), per_class)
        images = rng.integers(0, 255, (labels.size, 28, 28), np.uint8)
        write_idx(root / f"{split}-images-idx3-ubyte.gz", images)
        write_idx(root / f"{split}-labels-idx1-ubyte.gz", labels)
    return root


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("runner", ["quickstart", "study", "tune_synth"])
def test_sigterm_leaves_no_process(tmp_path, runner):
    out, data = tmp_path / "out", tmp_path / "data"
    if runner == "quickstart":
        command = ["-m", "facebench", "quickstart", "--quick", "--out", str(out), "--data"]
        # the quickstart trains in a temporary folder beside --out
        command, runs = [*command, str(data), "--workers", "2"], ".out.*/runs/*"
    elif runner == "study":
        idx = str(_idx_set(tmp_path / "idx"))
        command = ["benchmarks/uniform_study.py", "--quick", "--idx", idx, "--out", str(out)]
        runs = "out/runs/*"
    else:
        command = ["benchmarks/tune_synth.py", "--size", "quick", "--data", str(data)]
        command, runs = [*command, "--out", str(out), "--workers", "2"], "out/runs/*"
    _kill_while_a_worker_trains([sys.executable, *command], tmp_path, runs)
