"""Out of space, or any write error, for every command (issue 15.1): one line naming the path
and the cause, exit 2, nothing partial left behind.

Two ways to fail the writes: a full 3 MB tmpfs (where this process may mount one, e.g. as root
in a container) and, anywhere, a file-size limit of 0 bytes (RLIMIT_FSIZE: every write to a
regular file fails with EFBIG, as the full disk fails with ENOSPC).
"""

import contextlib
import errno
import os
import re
import resource
import shutil
import subprocess
from pathlib import Path

import pytest

M = "--model {w}/run/model.pt"
COMMANDS = {
    "data from-folder": "data from-folder {w}/faces --out {m}/pack",
    "data to-folder": "data to-folder {w}/synth --out {m}/faces",
    "data bin-to-folder": "data bin-to-folder {w}/synth/synth_val.bin --out {m}/p",
    "data folder-to-bin": "data folder-to-bin {w}/pairs --out {m}/val.bin",
    "data synth": "data synth --out {m}/s --identities 2 --image-size 32 --val-identities 2 "
    "--pairs 20 --workers 1",
    "embed": f"embed {M} --bin {{w}}/synth/synth_val.bin --out {{m}}/e.npy",
    "export": f"export {M} --onnx {{m}}/m.onnx --pack {{w}}/synth",
    "identify": "identify --gallery {w}/gallery.npy --probes {w}/probes.npy --out {m}/r",
    "ijb": "ijb --model {w}/m112.pt --root {w}/IJBC --out {m}/r",
    "index build": "index build --embeddings {w}/gallery.npy --out {m}/g.index",
    "index add": "index add --index {m}/g.index --embeddings {w}/probes.npy",
    "quickstart": "quickstart --quick --out {m}/q --data {m}/data",
    "report": "report {w}/reports --out {m}/r",
    "search": "search --index {w}/gallery.index --embeddings {w}/probes.npy --threshold 0.3 "
    "--out {m}/s.csv",
    "study": "study --idx {w}/idx --quick --out {m}/st",
    "train": "train {w}/tiny.yaml --data {w} --out {m}/run --no-progress",
    "uniform": f"uniform {M} --pack {{w}}/synth/test.rec --out {{m}}/r",
    "verify": f"verify {M} --bin {{w}}/synth/synth_val.bin --out {{m}}/r",
    "data_scripts/align.py": "--images {w}/IJBC/loose_crop --landmarks "
    "{w}/IJBC/meta/ijbc_name_5pts_score.txt --out {m}/aligned",
    "data_scripts/idx_to_packs.py": "{w}/idx --out {m}/fm --pairs-per-half 2",
    "data_scripts/json_digits_to_idx.py": "{w}/digits --out {m}/digits --test-fraction 0.5",
    "data_scripts/lfw_pairs_to_bin.py": "--pairs {w}/lfw_pairs.txt --root {w}/lfw "
    "--pattern {{name}}/{{name}}_{{n:04d}}.png --out {m}/lfw.bin",
}


def test_every_writing_command_is_here(writing_commands):
    assert set(COMMANDS) == writing_commands


@contextlib.contextmanager
def _full_tmpfs(path: Path):
    """A 3 MB tmpfs at ``path``, filled to the last byte; skip where mounting is not allowed."""
    path.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(path)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.decode().strip()})")
    try:
        yield
    finally:
        subprocess.run(["umount", str(path)], check=True)


def _fill(path: Path) -> None:
    with open(path / ".filler", "wb", buffering=0) as f:
        for block in (1 << 16, 1 << 12, 1):
            with contextlib.suppress(OSError):
                while True:
                    f.write(b"\0" * block)


@contextlib.contextmanager
def _no_file_growth():
    """Soft RLIMIT_FSIZE of 0 for the block: writes to regular files fail with EFBIG."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


@pytest.mark.parametrize("how", ["tmpfs", "fsize"])
@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_failed_write_is_one_line_and_leaves_nothing(
    world, tmp_path, capsys, snapshot, run_command, command, how
):
    mount = tmp_path / "m"
    argv = COMMANDS[command].format(w=world, m=mount).split()
    with contextlib.ExitStack() as stack:
        if how == "tmpfs":
            stack.enter_context(_full_tmpfs(mount))
        else:
            mount.mkdir()
        if command == "index add":
            shutil.copy(world / "gallery.index", mount / "g.index")
        if how == "tmpfs":
            _fill(mount)
        before = snapshot(mount)
        capsys.readouterr()
        with _no_file_growth() if how == "fsize" else contextlib.nullcontext():
            status = run_command(command, argv)
        stderr = capsys.readouterr().err
        after = snapshot(mount)
    cause = os.strerror(errno.ENOSPC if how == "tmpfs" else errno.EFBIG)
    err = re.findall(r"\S+: error: [^\r\n]*", stderr)  # progress bars may precede it
    assert status == 2, stderr
    assert len(err) == 1 and cause in err[0] and "Traceback" not in stderr, stderr
    assert str(mount) in err[0], err[0]
    assert after == before
