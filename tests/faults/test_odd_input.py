"""Odd input that once raised tracebacks (issue 15.5): each is one line naming the file (and
key, line or recipe), exit 2; offsets are range-checked before any arithmetic."""

import io
import os
import pickle

import numpy as np
import pytest

from facebench.data.images import encode_image
from facebench.data.packs import write_face_pack


@pytest.fixture
def pack(tmp_path):
    rng = np.random.default_rng(1)
    samples = [(i // 2, encode_image(rng.integers(0, 256, (8, 8, 3), np.uint8))) for i in range(6)]
    write_face_pack(str(tmp_path / "p"), samples, (8, 8))
    return tmp_path / "p"


@pytest.mark.parametrize(
    ("offset", "part"),
    [
        (2**63 - 1, "past the end"),
        (2**64 + 5, "out of range"),
        (-8, "negative offset"),
    ],
)
def test_index_offsets_near_and_beyond_int64(pack, one_line_error, offset, part):
    lines = (pack / "train.idx").read_text().splitlines()
    key = lines[2].split("\t")[0]
    lines[2] = f"{key}\t{offset}"
    (pack / "train.idx").write_text("\n".join(lines) + "\n")
    one_line_error(["data", "info", str(pack)], "train.idx", part)


def test_key_beyond_int64(pack, one_line_error):
    with open(pack / "train.idx", "a") as f:
        f.write(f"{2**70}\t0\n")
    one_line_error(["data", "info", str(pack)], "train.idx", "out of range")


def npz_bytes() -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, a=np.ones((3, 4)))
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("make", "part"),
    [
        (lambda p: p.write_bytes(b""), "cannot read embeddings"),
        (lambda p: p.write_bytes(npz_bytes()), "not a .npy array"),
        (lambda p: np.save(p, np.zeros((0, 4), np.float32)), "no embeddings (0 rows)"),
        (lambda p: np.save(p, np.ones((3, 4), np.int64)), "expected float (N, d)"),
        (lambda p: np.save(p, np.ones(4, np.float32)), "expected float (N, d)"),
        (lambda p: p.write_bytes(b"\x93NUMPY\x01\x00garbage"), "cannot read embeddings"),
    ],
)
def test_odd_embedding_files(tmp_path, one_line_error, make, part):
    path = tmp_path / "e.npy"
    make(path)
    path.with_suffix(".json").write_text('{"labels": [0, 1, 2]}')
    err = one_line_error(
        ["index", "build", "--embeddings", str(path), "--out", str(tmp_path / "g")], part
    )
    assert str(path) in err
    assert not (tmp_path / "g").exists()


def test_empty_arrays_in_a_bin(tmp_path, one_line_error):
    path = tmp_path / "e.bin"
    with open(path, "wb") as f:
        pickle.dump(([np.zeros((0, 0, 3), np.uint8)] * 4, [True, False]), f, protocol=4)
    out = tmp_path / "pairs"
    one_line_error(
        ["data", "bin-to-folder", str(path), "--out", str(out)], "e.bin: image 0", "empty"
    )
    assert not out.exists()


def test_dangling_symlink_in_an_image_folder(tmp_path, one_line_error):
    for name in ("a", "b"):
        (tmp_path / "f" / name).mkdir(parents=True)
        (tmp_path / "f" / name / "1.jpg").write_bytes(encode_image(np.zeros((8, 8, 3), np.uint8)))
    os.symlink(tmp_path / "nowhere.jpg", tmp_path / "f" / "b" / "2.jpg")
    out = tmp_path / "p"
    one_line_error(
        ["data", "from-folder", str(tmp_path / "f"), "--out", str(out)],
        "2.jpg",
        "cannot read",
    )
    assert not out.exists()


@pytest.mark.parametrize(
    ("line", "part"),
    [
        ("model:\n  embedding_size: 1e9", "model.embedding_size must be int"),
        ("model:\n  embedding_size: 1000000000", "model.embedding_size must be <="),
        ("optim:\n  lr: .nan", "optim.lr must be a finite number"),
        ("train:\n  epochs: .inf", "train.epochs must be a finite number"),
        ("train:\n  epochs: 0", "train.epochs must be > 0"),
        ("train:\n  max_steps: -5", "train.max_steps must be >= 1"),
        ("train:\n  max_steps: 0", "train.max_steps must be >= 1"),
        ("head:\n  params:\n    scale: .inf", "head.params.scale must be a finite number"),
        ("schedule:\n  milestones: [1, .nan]", "schedule.milestones[1] must be a finite number"),
        ("train:\n  batch_size: 8\ntrain:\n  epochs: 2", "key 'train' appears twice"),
        ("train:\n  batch_size: 8\n  batch_size: 16", "key 'batch_size' appears twice"),
    ],
)
def test_bad_recipe_values_name_the_recipe_file(tmp_path, one_line_error, line, part):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"data:\n  train: p\n{line}\n")
    out = tmp_path / "run"
    one_line_error(["train", str(recipe), "--out", str(out)], str(recipe), part)
    assert not out.exists()


def test_bin_pickle_calling_bytes_with_a_size_is_refused(tmp_path, one_line_error):
    """Protocol 2 writes b"" as ``bytes()``; ``bytes(N)`` would allocate N bytes on load."""
    path = tmp_path / "big.bin"
    path.write_bytes(b"\x80\x02c__builtin__\nbytes\nJ\x00\x00\x00\x40\x85R.")  # bytes(2**30)
    one_line_error(["data", "info", str(path)], "big.bin", "not a readable bin pickle")
