"""Writers of one output exclude each other (issue 15.2), and a killed job leaves nothing at its
output path or a state the next run recognises (issue 15.3). Real processes, reduced sizes."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np

from facebench.search.gallery import Gallery
from facebench.train.checkpoint import latest_checkpoint

ENV = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}


def _python(code: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_concurrent_index_adds_lose_nothing(world, tmp_path):
    index = tmp_path / "g.index"
    index.write_bytes((world / "gallery.index").read_bytes())
    before = len(Gallery.load(str(index)))
    # each add sleeps between reading the gallery and saving it: without the lock, the second
    # save would drop the first add (the lost update of issue 15)
    code = f"""
        import time
        from facebench.cli import main
        from facebench.search.gallery import Gallery
        save = Gallery.save
        def slow_save(self, path):
            time.sleep(0.5)
            save(self, path)
        Gallery.save = slow_save
        raise SystemExit(main(["index", "add", "--index", {str(index)!r},
                               "--embeddings", {str(world / "probes.npy")!r}]))
    """
    adders = [_python(code) for _ in range(2)]
    results = [p.communicate(timeout=120) for p in adders]
    assert [p.returncode for p in adders] == [0, 0], results
    added = len(np.load(world / "probes.npy"))
    assert len(Gallery.load(str(index))) == before + 2 * added
    assert sorted(os.listdir(tmp_path)) == ["g.index"]


def test_a_second_train_on_a_run_in_use_is_refused(world, tmp_path, run_command, capsys):
    run = tmp_path / "run"
    argv = ["train", str(world / "tiny.yaml"), "--data", str(world), "--out", str(run)]
    first = subprocess.Popen(
        [sys.executable, "-m", "facebench", *argv, "--no-progress", "--set", "train.epochs=500"],
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        # training holds the lock and has a checkpoint, so only the lock can refuse a --resume
        while latest_checkpoint(run / "checkpoints") is None:
            assert first.poll() is None, first.stderr.read()
            assert time.monotonic() < deadline
            time.sleep(0.1)
        log_before = (run / "log.jsonl").stat().st_size
        assert run_command("train", [*argv, "--resume"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "run folder in use by another facebench process" in err[0], err
        assert (run / "log.jsonl").stat().st_size >= log_before  # still the first run's log
    finally:
        first.kill()
        first.wait()


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(c) for c in path.read_text().split()] if path.exists() else []


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def test_killed_synth_leaves_no_output_no_workers_and_is_recognised(tmp_path, run_command, capsys):
    out = tmp_path / "synth"
    args = ["data", "synth", "--out", str(out), "--image-size", "32", "--workers", "2"]
    # enough images for the worker pool (4000), killed as soon as its workers run
    job = subprocess.Popen(
        [sys.executable, "-m", "facebench", *args, "--identities", "200"],
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while len(_children(job.pid)) < 2:
        assert job.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    workers = _children(job.pid)
    time.sleep(1.0)  # the workers start drawing
    job.send_signal(signal.SIGKILL)
    job.wait()
    deadline = time.monotonic() + 30
    while any(_alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(w) for w in workers), "workers outlived the killed parent"
    assert not out.exists()
    leftovers = [p for p in tmp_path.iterdir() if p.name.startswith(".synth.fbtmp-")]
    assert len(leftovers) == 1 and leftovers[0].is_dir()
    assert run_command("data", ["data", "info", str(leftovers[0])]) == 2
    assert "temporary folder left by an interrupted write" in capsys.readouterr().err
    # the next run writes the whole folder and removes the dead run's temporary folder
    small = ["--identities", "2", "--val-identities", "2", "--pairs", "20", "--workers", "1"]
    assert run_command("data synth", [*args[:-2], *small]) == 0
    assert [p.name for p in tmp_path.iterdir()] == ["synth"]
    assert run_command("data info", ["data", "info", str(out)]) == 0


def test_data_info_names_what_an_incomplete_folder_lacks(world, tmp_path, run_command, capsys):
    copy = tmp_path / "synth"
    copy.mkdir()
    for name in os.listdir(world / "synth"):
        if name != "synth_hard.bin":
            (copy / name).write_bytes((world / "synth" / name).read_bytes())
    (copy / f".test.rec.fbtmp-{2**22 + 7}-0123abcd").write_bytes(b"half")
    assert run_command("data info", ["data", "info", str(copy)]) == 2
    err = capsys.readouterr().err
    assert "incomplete pack folder (missing synth_hard.bin; temporaries" in err, err
    assert ".test.rec.fbtmp-" in err
