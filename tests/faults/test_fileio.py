"""facebench.fileio: atomic files and folders, umask permissions, temporaries, staging, locks."""

import errno
import os
import subprocess
import sys
import textwrap

import pytest

from facebench import fileio
from facebench.errors import WriteError


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(path) -> int:
    return os.stat(path).st_mode & 0o777


def test_files_and_folders_get_the_umask_permissions(tmp_path, umask_022):
    fileio.write_text(tmp_path / "a.txt", "x")
    with fileio.atomic_path(tmp_path / "b.bin") as tmp, open(tmp, "wb") as f:
        f.write(b"y")
    with fileio.atomic_dir(tmp_path / "d") as tmp:
        fileio.write_text(os.path.join(tmp, "inner.txt"), "z")
    assert [_mode(tmp_path / n) for n in ("a.txt", "b.bin", "d", "d/inner.txt")] == [
        0o644,
        0o644,
        0o755,
        0o644,
    ]
    os.umask(0o077)
    fileio.write_text(tmp_path / "private.txt", "x")
    assert _mode(tmp_path / "private.txt") == 0o600


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "r.json"
    fileio.write_json(path, {"a": 1})
    with pytest.raises(RuntimeError), fileio.atomic_file(path, "w") as f:
        f.write("half")
        raise RuntimeError("a bug, not a write error")
    assert fileio.read_json(path) == {"a": 1}
    assert os.listdir(tmp_path) == ["r.json"]


def test_write_errors_name_the_path_and_the_cause(tmp_path):
    # torch.save reports a failed write as a RuntimeError whose context is the OSError
    full = pytest.raises(WriteError, match=r"m\.pt: cannot write \(No space left on device\)")
    with full, fileio.atomic_file(tmp_path / "sub" / "m.pt"):
        try:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        except OSError as exc:
            raise RuntimeError("enforce fail at inline_container.cc: unexpected pos") from exc
    assert os.listdir(tmp_path) == []  # the folder the write created is gone too
    with pytest.raises(WriteError, match=r"File too large"), fileio.atomic_file(tmp_path / "x"):
        raise OSError(errno.EFBIG, os.strerror(errno.EFBIG))


def test_a_folder_is_renamed_only_when_complete(tmp_path):
    with pytest.raises(KeyError), fileio.atomic_dir(tmp_path / "out") as tmp:
        fileio.write_text(os.path.join(tmp, "part.txt"), "x")
        raise KeyError("interrupted")
    assert os.listdir(tmp_path) == []
    (tmp_path / "out").mkdir()
    with pytest.raises(WriteError, match="already exists"), fileio.atomic_dir(tmp_path / "out"):
        pass


def test_staged_files_appear_together_or_not_at_all(tmp_path):
    with pytest.raises(ValueError), fileio.staged():
        fileio.write_text(tmp_path / "new" / "a.json", "{}")
        assert not (tmp_path / "new" / "a.json").exists()
        raise ValueError("the second file failed")
    assert os.listdir(tmp_path) == []
    with fileio.staged():
        fileio.write_text(tmp_path / "a.txt", "a")
        fileio.write_text(tmp_path / "b.txt", "b")
    assert sorted(os.listdir(tmp_path)) == ["a.txt", "b.txt"]


def test_temporaries_of_dead_processes_are_listed_and_cleaned(tmp_path):
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        text=True,
        capture_output=True,
        check=True,
    )
    pid = int(dead.stdout)
    stale_file = tmp_path / f".g.index.fbtmp-{pid}-0123abcd"
    stale_dir = tmp_path / f".synth.fbtmp-{pid}-89abcdef"
    live = tmp_path / f".g.index.fbtmp-{os.getpid()}-00000000"
    stale_file.write_bytes(b"half")
    stale_dir.mkdir()
    live.write_bytes(b"being written")
    assert fileio.stale_temporaries(tmp_path) == [str(stale_file), str(stale_dir)]
    fileio.write_bytes(tmp_path / "g.index", b"index")
    assert sorted(os.listdir(tmp_path)) == sorted([live.name, stale_dir.name, "g.index"])


def test_append_is_undone_when_it_fails(tmp_path, monkeypatch):
    path = tmp_path / "log.jsonl"
    fileio.append_text(path, '{"step": 1}\n')
    real_write = os.write

    def short_then_full(fd, data):
        if len(data) > 4:
            return real_write(fd, bytes(data[:4]))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", short_then_full)
    with pytest.raises(WriteError, match=r"log\.jsonl: cannot write"):
        fileio.append_text(path, '{"step": 2}\n')
    monkeypatch.undo()
    assert path.read_text() == '{"step": 1}\n'


@pytest.mark.parametrize(
    "make, call, message",
    [
        (lambda p: p.mkdir(), lambda p: fileio.check_output_file(p), "is a folder"),
        (lambda p: p.write_text("x"), lambda p: fileio.check_output_file(p), "already exists"),
        (lambda p: p.write_text("x"), lambda p: fileio.check_output_dir(p), "is a file"),
        (lambda p: p.mkdir(), lambda p: fileio.check_output_dir(p, new=True), "already exists"),
        (lambda p: p.write_text("x"), lambda p: fileio.check_output_file(p / "y"), "not a folder"),
    ],
)
def test_output_checks(tmp_path, make, call, message):
    path = tmp_path / "o"
    make(path)
    with pytest.raises(WriteError, match=message):
        call(path)


def test_a_second_holder_waits_or_is_refused(tmp_path):
    path = tmp_path / "g.index"
    path.write_text("v1")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
            import sys, time
            from facebench import fileio
            with fileio.exclusive({str(path)!r}, wait=True):
                print("locked", flush=True)
                time.sleep(1.0)
                fileio.write_text({str(path)!r}, "v2")
        """),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "locked"
    refused = pytest.raises(WriteError, match="in use by another facebench process")
    with refused, fileio.exclusive(path, wait=False):
        pass
    with fileio.exclusive(path, wait=True):  # returns once the holder replaced the file
        assert path.read_text() == "v2"
    assert holder.wait() == 0


def _open_after_removal(monkeypatch, folder, times):
    """os.open as seen by a check racing another process's check of the same new ``folder``:
    the first ``times`` calls find the folder removed by the other's clean-up."""
    from facebench.fileio import outputs

    real_open, calls = os.open, []

    def racing_open(path, *args):
        calls.append(path)
        if len(calls) <= times and os.path.isdir(folder):
            os.rmdir(folder)  # the other process removes the folder it created, ours inside
        return real_open(path, *args)

    monkeypatch.setattr(outputs.os, "open", racing_open)
    return calls


def test_an_output_check_racing_another_process_checks_again(tmp_path, monkeypatch):
    from facebench.fileio import check_output_dir

    out = tmp_path / "run" / "two"
    calls = _open_after_removal(monkeypatch, out, times=2)
    check_output_dir(out)  # the third try finds its folder in place
    assert len(calls) == 3
    assert os.listdir(tmp_path) == []  # nothing left


def test_an_output_folder_that_keeps_vanishing_is_one_error(tmp_path, monkeypatch):
    from facebench.errors import WriteError
    from facebench.fileio import check_output_dir
    from facebench.fileio.outputs import PROBE_TRIES

    out = tmp_path / "two"
    calls = _open_after_removal(monkeypatch, out, times=PROBE_TRIES)
    with pytest.raises(WriteError, match=r"two: cannot write a file there \(No such file"):
        check_output_dir(out)
    assert len(calls) == PROBE_TRIES and os.listdir(tmp_path) == []
