"""A tiny world for the fault tests: synthetic data, a trained model, embeddings, a gallery,
reports, an IJB layout, an image folder, a pairs list and an idx set (32 px where it can)."""

import argparse
import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from facebench.cli import build_parser, main
from facebench.data.idx_ubyte import write_idx
from facebench.data.images import InputConvention, encode_image
from facebench.models import build_backbone
from facebench.models.artifact import save_model_artifact

ROOT = Path(__file__).resolve().parents[2]


def load_script(path: Path):
    """A test or data script loaded by path (neither folder is a package)."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_cli(argv: list[str]) -> None:
    assert main([str(a) for a in argv]) == 0, argv


@pytest.fixture(scope="session")
def world(tmp_path_factory):
    torch.set_num_threads(1)
    w = tmp_path_factory.mktemp("world")
    synth = "--identities 4 --images-per-identity 4 --test-images-per-identity 2 "
    synth += "--val-identities 4 --val-images-per-identity 2 --pairs 20 --image-size 32"
    run_cli(["data", "synth", "--out", w / "synth", "--workers", "1", *synth.split()])
    (w / "tiny.yaml").write_text(
        "name: tiny\n"
        "data: {train: synth, num_workers: 0}\n"
        "model: {backbone: tiny_face, embedding_size: 16,"
        " options: {widths: [4, 8], blocks: [1, 1]}}\n"
        "head: {name: bce_u, params: {scale: 16.0, margin: 0.1}}\n"
        "optim: {name: sgd, lr: 0.1}\n"
        "train: {epochs: 1, batch_size: 8, log_every: 1, checkpoint_every: 0}\n"
        "eval: {bins: []}\n"
        "output: {tensorboard: false}\n"
    )
    run_cli(["train", w / "tiny.yaml", "--data", w, "--out", w / "run", "--no-progress"])
    model = w / "run" / "model.pt"
    embed = ["embed", "--model", model, "--no-progress", "--pack"]
    run_cli([*embed, w / "synth", "--out", w / "gallery.npy"])
    run_cli([*embed, w / "synth" / "test.rec", "--out", w / "probes.npy"])
    run_cli(["index", "build", "--embeddings", w / "gallery.npy", "--out", w / "gallery.index"])
    run_cli(
        ["verify", "--model", model, "--bin", w / "synth" / "synth_val.bin", "--out", w / "reports"]
    )
    run_cli(["data", "bin-to-folder", w / "synth" / "synth_val.bin", "--out", w / "pairs"])
    run_cli(["data", "to-folder", w / "synth", "--out", w / "faces"])
    kwargs = {"widths": [8, 8, 8], "embedding_size": 16}  # 112 px for the IJB layout
    net = build_backbone("tiny_face", **kwargs).eval()
    save_model_artifact(w / "m112.pt", net, "tiny_face", kwargs, InputConvention())
    test_ijb = load_script(ROOT / "tests" / "eval" / "test_ijb.py")
    test_ijb.write_ijb(str(w / "IJBC"), np.random.default_rng(0))
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        (w / "lfw" / name).mkdir(parents=True)
        for n in (1, 2):
            image = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
            (w / "lfw" / name / f"{name}_{n:04d}.png").write_bytes(encode_image(image, ".png"))
    (w / "lfw_pairs.txt").write_text("a 1 2\na 1 b 2\n")
    (w / "idx").mkdir()
    for split, per_class in (("train", 4), ("t10k", 4)):
        labels = np.repeat(np.arange(8), per_class).astype(np.uint8)
        images = rng.integers(0, 256, (len(labels), 6, 5), dtype=np.uint8)
        write_idx(w / "idx" / f"{split}-images-idx3-ubyte.gz", images)
        write_idx(w / "idx" / f"{split}-labels-idx1-ubyte.gz", labels)
    (w / "digits").mkdir()
    for digit in range(10):
        grey = (np.arange(2 * 28 * 28) % 256 / 255).tolist()  # two 28x28 images per digit
        (w / "digits" / f"{digit}.json").write_text(json.dumps({"data": grey}))
    return w


def _snapshot(root: Path) -> dict:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            out[str(p.relative_to(root))] = (p.is_dir(), st.st_size, st.st_mtime_ns)
    return out


@pytest.fixture
def snapshot():
    """``snapshot(root)``: every path under ``root`` with its type, size and modification time."""
    return _snapshot


def _run_command(command: str, argv: list[str]) -> int:
    if command.startswith("data_scripts/"):
        return load_script(ROOT / command).main([str(a) for a in argv])
    return main([str(a) for a in argv])


@pytest.fixture
def run_command():
    """``run_command(command, argv)``: a subcommand ("index add") or a data script
    ("data_scripts/align.py") run in this process; its exit status."""
    return _run_command


def _subcommands(parser: argparse.ArgumentParser, prefix: str = "") -> set[str]:
    found = set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                full = f"{prefix} {name}".strip()
                found |= _subcommands(sub, full) or {full}
    return found


#: Subcommands that write nothing.
WRITES_NOTHING = {"data info"}


@pytest.fixture(scope="session")
def writing_commands() -> set[str]:
    """Every subcommand of the CLI's parser that writes, and every data script."""
    scripts = {f"data_scripts/{p.name}" for p in (ROOT / "data_scripts").glob("*.py")}
    return (_subcommands(build_parser()) - WRITES_NOTHING) | scripts


@pytest.fixture
def one_line_error(capsys):
    """``check(argv, *parts)``: ``argv`` fails with exit 2 and one ``facebench: error:`` line
    holding every part (the line is returned)."""

    def check(argv, *parts):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err, err
        line = err.strip().split("\n")[-1].split("\r")[-1]  # after any progress bar
        assert line.startswith("facebench: error:") and err.count("facebench: error:") == 1, err
        for part in parts:
            assert part in line, line
        return line

    return check
