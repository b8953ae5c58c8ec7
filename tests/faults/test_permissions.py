"""Files the package writes get the permissions the umask gives (issue 14.2): under umask 022
every output file is 0644 and every folder 0755, for every kind of output."""

import os
import stat

import pytest

M = "--model {w}/run/model.pt"
WRITES = [
    "data synth --out {o}/synth --identities 2 --val-identities 2 --pairs 20 --image-size 32 "
    "--workers 1",
    "data to-folder {w}/synth --out {o}/faces",
    "data from-folder {w}/faces --out {o}/pack",
    "data bin-to-folder {w}/synth/synth_val.bin --out {o}/pairs",
    "data folder-to-bin {w}/pairs --out {o}/val.bin",
    "train {w}/tiny.yaml --data {w} --out {o}/run --no-progress --set train.checkpoint_every=1 "
    "--set output.tensorboard=true",
    f"embed {M} --bin {{w}}/synth/synth_val.bin --out {{o}}/emb/e.npy --no-progress",
    f"export {M} --onnx {{o}}/m.onnx --pack {{w}}/synth",
    f"verify {M} --bin {{w}}/synth/synth_val.bin --out {{o}}/reports",
    f"uniform {M} --pack {{w}}/synth/test.rec --out {{o}}/reports",
    "identify --gallery {w}/gallery.npy --probes {w}/probes.npy --out {o}/reports",
    "report {o}/reports --out {o}/report",
    "index build --embeddings {w}/gallery.npy --out {o}/g.index",
    "index add --index {o}/g.index --embeddings {w}/probes.npy",
    "search --index {o}/g.index --embeddings {w}/probes.npy --threshold 0.3 --out {o}/s.csv",
]
KINDS = {".json", ".md", ".png", ".npy", ".index", ".csv", ".onnx", ".pt", ".rec", ".idx", ".bin"}


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_every_output_gets_the_umask_permissions(world, tmp_path, run_command, umask_022):
    for command in WRITES:
        argv = command.format(w=world, o=tmp_path).split()
        assert run_command(" ".join(argv[:2]), argv) == 0, command
    modes, kinds = {}, set()
    for dirpath, dirnames, filenames in os.walk(tmp_path):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            modes[os.path.relpath(path, tmp_path)] = stat.S_IMODE(os.lstat(path).st_mode)
            kinds.add(os.path.splitext(name)[1])
    assert kinds >= KINDS  # every kind of output was written
    assert any(p.startswith("run/checkpoints/step_") for p in modes)
    wrong = {
        p: oct(m)
        for p, m in modes.items()
        if m != (0o755 if os.path.isdir(tmp_path / p) else 0o644)
    }
    assert not wrong
