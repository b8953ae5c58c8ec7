"""Synthetic identities: layout, determinism, open-set bins, identity signal."""

import hashlib
import os

import cv2
import numpy as np
import pytest

from facebench.data.bins import read_verification_bin
from facebench.data.packs import FacePack
from facebench.data.synth import dataset as synthetic
from facebench.data.synth.dataset import (
    SynthConfig,
    encode_identity_images,
    render_identity_images,
    verification_pairs,
    write_synthetic_dataset,
)
from facebench.data.synth.render import FaceRenderer
from facebench.errors import ConfigError

SMALL = SynthConfig(
    identities=6,
    images_per_identity=3,
    test_images_per_identity=2,
    val_identities=5,
    val_images_per_identity=3,
    pairs=40,
    image_size=64,
    seed=3,
)


def digests(directory):
    return {
        name: hashlib.sha256((directory / name).read_bytes()).hexdigest()
        for name in sorted(os.listdir(directory))
    }


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "a"
    write_synthetic_dataset(out, SMALL)
    return out


def test_files_and_counts(synth_dir):
    assert sorted(os.listdir(synth_dir)) == [
        "property", "synth.json", "synth_hard.bin", "synth_val.bin",
        "test.idx", "test.rec", "train.idx", "train.rec",
    ]  # fmt: skip
    train = FacePack(synth_dir)
    assert len(train) == 18 and train.num_classes == 6 and train.property == (6, 64, 64)
    assert [train.label(int(k)) for k in train.image_keys] == [i // 3 for i in range(18)]
    assert train.read_image(1).shape == (64, 64, 3)
    test = FacePack(synth_dir / "test.rec")
    assert len(test) == 12 and [test.label(int(k)) for k in test.image_keys[::2]] == list(range(6))
    for name in ("synth_val.bin", "synth_hard.bin"):
        vbin = read_verification_bin(synth_dir / name)
        assert len(vbin) == 40 and vbin.decode().shape == (80, 64, 64, 3)
        # LFW layout: 10 contiguous folds, each 2 genuine then 2 impostor pairs
        assert vbin.issame.tolist() == [True, True, False, False] * 10


def test_same_bytes_for_a_seed(synth_dir, tmp_path):
    write_synthetic_dataset(tmp_path / "b", SMALL)
    assert digests(tmp_path / "b") == digests(synth_dir)
    write_synthetic_dataset(tmp_path / "c", SynthConfig(**{**SMALL.__dict__, "seed": 4}))
    assert digests(tmp_path / "c")["train.rec"] != digests(synth_dir)["train.rec"]


@pytest.mark.slow
def test_worker_processes_draw_the_same_bytes(monkeypatch):
    """Spawned workers (slow: each imports torch) give the serial result."""
    monkeypatch.setattr(synthetic, "_MIN_IMAGES_FOR_POOL", 0)
    tasks = [(1, 48, ident, range(2), 1.0) for ident in range(3)]
    assert list(synthetic._render_all(tasks, 2, "t")) == list(synthetic._render_all(tasks, 1, "t"))


def test_bins_come_from_held_out_identities(synth_dir):
    """Rebuild the val bin from identities K.. (the ones after the training identities)."""
    vbin = read_verification_bin(synth_dir / "synth_val.bin")
    images = range(1000, 1003)
    held_out = [encode_identity_images(3, 64, 6 + j, images, 1.0) for j in range(5)]
    pairs, issame = verification_pairs(np.random.default_rng([3, 2, 1]), 5, 3, 40)
    assert vbin.issame.tolist() == issame
    assert vbin.images == [held_out[ident][img] for pair in pairs for ident, img in pair]
    train = FacePack(synth_dir)
    train_bytes = {train.read_encoded(int(k))[0] for k in train.image_keys}
    assert not train_bytes & set(vbin.images)


def test_verification_pairs_layout():
    pairs, issame = verification_pairs(np.random.default_rng(0), 7, 4, 200)
    assert len(pairs) == 200 and issame == ([True] * 10 + [False] * 10) * 10
    for ((ia, a), (ib, b)), same in zip(pairs, issame, strict=True):
        assert (ia == ib) == same
        assert 0 <= a < 4 and 0 <= b < 4
        if same:
            assert a != b


def test_identity_is_stable_and_images_vary():
    """Nearest-class-mean on downsampled pixels: at least twice chance, below perfect."""
    renderer = FaceRenderer(112, seed=0)
    feats, labels = [], []
    for ident in range(20):
        for rgb in render_identity_images(renderer, 0, ident, range(6), 1.0):
            small = cv2.resize(rgb, (16, 16), interpolation=cv2.INTER_AREA).astype(np.float32)
            small = small.ravel() - small.mean()
            feats.append(small / np.linalg.norm(small))
            labels.append(ident)
    feats, labels = np.array(feats), np.array(labels)
    train, test = np.arange(len(labels)) % 6 < 4, np.arange(len(labels)) % 6 >= 4
    means = np.stack([feats[train & (labels == k)].mean(0) for k in range(20)])
    accuracy = (np.argmax(feats[test] @ means.T, 1) == labels[test]).mean()
    assert 0.1 <= accuracy < 0.5  # chance is 0.05; a learned model does much better
    images = render_identity_images(renderer, 0, 0, range(3), 1.0)
    assert not np.array_equal(images[0], images[1])


def test_difficulty_zero_keeps_the_face_fixed():
    renderer = FaceRenderer(112, seed=0)
    a, b = render_identity_images(renderer, 0, 5, range(2), 0.0)
    centre = slice(40, 72)  # the face centre: only the background differs
    assert np.abs(a[centre, centre].astype(int) - b[centre, centre]).mean() < 2


@pytest.mark.parametrize(
    "change, message",
    [
        ({"pairs": 30}, "multiple of 20"),
        ({"identities": 1}, "at least 2 identities"),
        ({"val_images_per_identity": 1}, "2 images each"),
        ({"difficulty": -1.0}, "difficulty"),
    ],
)
def test_bad_config(tmp_path, change, message):
    with pytest.raises(ConfigError, match=message):
        write_synthetic_dataset(tmp_path / "x", SynthConfig(**{**SMALL.__dict__, **change}))
