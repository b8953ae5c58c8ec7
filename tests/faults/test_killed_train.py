"""A killed or terminated `facebench train` leaves no process behind (issue 26.7): its DataLoader
workers die with it (kill -9: the kernel's parent-death signal), and SIGTERM ends the run as
Ctrl-C does (clean-ups run, one line, exit 130)."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from facebench.data.images import encode_image
from facebench.data.packs import write_face_pack


def _ppid_and_state(pid: int) -> tuple[int, str] | None:
    """(parent pid, state letter) of a process from /proc, None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # the name in parentheses may hold spaces
    return int(fields[1]), fields[0]


def _descendants(root: int) -> set[int]:
    """Live processes below ``root`` (children, their children, ...)."""
    parents = {}
    for name in os.listdir("/proc"):
        if name.isdigit() and (info := _ppid_and_state(int(name))) and info[1] != "Z":
            parents[int(name)] = info[0]
    found, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, ppid in parents.items() if ppid in frontier} - found
        found |= frontier
    return found


def _alive(pid: int) -> bool:
    info = _ppid_and_state(pid)
    return info is not None and info[1] != "Z"  # a zombie has ended; only its entry is left


@pytest.fixture
def endless_run(tmp_path):
    """argv of a `facebench train` on 64 images with 2 DataLoader workers that runs for hours."""
    rng = np.random.default_rng(0)
    images = [encode_image(rng.integers(0, 256, (16, 16, 3), np.uint8)) for _ in range(64)]
    write_face_pack(str(tmp_path / "p"), [(i // 16, img) for i, img in enumerate(images)], (16, 16))
    (tmp_path / "r.yaml").write_text(
        "data: {train: p, num_workers: 2}\n"
        "model: {backbone: tiny_face, embedding_size: 8,"
        " options: {widths: [4, 8], blocks: [1, 1]}}\n"
        "train: {epochs: 100000, batch_size: 8, log_every: 1000000}\n"
        "output: {tensorboard: false}\n"
    )
    argv = [sys.executable, "-m", "facebench", "train", str(tmp_path / "r.yaml"), "--no-progress"]
    return [*argv, "--data", str(tmp_path), "--out", str(tmp_path / "run")]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["kill-9", "SIGTERM"])
def test_a_killed_train_leaves_no_worker_within_a_second(endless_run, tmp_path, sig):
    with open(tmp_path / "stderr", "w") as err:
        job = subprocess.Popen(endless_run, stdout=subprocess.DEVNULL, stderr=err)
    try:
        deadline = time.monotonic() + 120
        while len(workers := _descendants(job.pid)) < 2:  # training has started its loader
            assert job.poll() is None, (tmp_path / "stderr").read_text()
            assert time.monotonic() < deadline, "the DataLoader workers never started"
            time.sleep(0.05)
        time.sleep(0.5)  # well inside the loop
        job.send_signal(sig)
        deadline = time.monotonic() + 1.0
        while any(map(_alive, workers)) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not [pid for pid in workers if _alive(pid)], "workers outlived their parent"
        # the parent too is gone within the second: after SIGTERM its clean-ups run, it says
        # so, and it leaves without the interpreter's slow teardown (facebench.cli.run)
        expected = -signal.SIGKILL if sig == signal.SIGKILL else 130
        assert job.wait(timeout=max(0.1, deadline - time.monotonic())) == expected
        if sig == signal.SIGTERM:
            err = (tmp_path / "stderr").read_text()
            assert err.strip().endswith("facebench: interrupted") and "Traceback" not in err, err
    finally:
        if job.poll() is None:
            job.kill()
        job.wait()


def test_a_worker_stays_quiet_when_its_parent_cuts_the_connection(capsys):
    # the race behind a SIGTERM: the parent stops while it fetches a batch from a worker's
    # resource sharer, which then reports the reset through sys.excepthook
    from facebench.procs import _quiet_when_the_parent_left

    _quiet_when_the_parent_left(ConnectionResetError, ConnectionResetError(104, "reset"), None)
    assert capsys.readouterr().err == ""
    _quiet_when_the_parent_left(ValueError, ValueError("a real error"), None)
    assert "ValueError: a real error" in capsys.readouterr().err
