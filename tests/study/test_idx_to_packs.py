"""data_scripts/idx_to_packs.py: an idx set becomes closed-set packs, an open-set pack and bin."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from facebench.data import idx_packs
from facebench.data.bins import read_verification_bin
from facebench.data.idx_ubyte import read_idx, write_idx
from facebench.data.packs import FacePack
from facebench.errors import DataError

SCRIPT = Path(__file__).resolve().parents[2] / "data_scripts" / "idx_to_packs.py"
spec = importlib.util.spec_from_file_location("idx_to_packs", SCRIPT)
idx_to_packs = importlib.util.module_from_spec(spec)
spec.loader.exec_module(idx_to_packs)


def _fake_set(root: Path, per_class_train=6, per_class_test=5, classes=5, size=(6, 5)):
    """A tiny idx set whose every image is unique: pixel (0, 0) is the image index."""
    rng = np.random.default_rng(1)
    for split, per_class in (("train", per_class_train), ("t10k", per_class_test)):
        labels = rng.permutation(np.repeat(np.arange(classes), per_class)).astype(np.uint8)
        images = rng.integers(0, 256, size=(len(labels), *size), dtype=np.uint8)
        images[:, 0, 0] = np.arange(len(labels))
        write_idx(root / f"{split}-images-idx3-ubyte.gz", images)
        write_idx(root / f"{split}-labels-idx1-ubyte.gz", labels)


def _pack_contents(path: Path) -> list[tuple[bytes, int]]:
    pack = FacePack(str(path))
    return [(pack.read_image(int(k)), pack.label(int(k))) for k in pack.image_keys]


def test_parse_classes():
    assert idx_packs.parse_classes("0-2,7") == [0, 1, 2, 7]
    assert idx_packs.parse_classes("4,1") == [1, 4]
    with pytest.raises(DataError, match="cannot parse"):
        idx_packs.parse_classes("a-b")


def test_lfw_pair_layout_against_a_loop():
    labels = np.repeat(np.arange(4), 7)
    pairs, issame = idx_packs.draw_lfw_pairs(labels, 5, np.random.default_rng(0))
    assert pairs.shape == (100, 2) and issame.shape == (100,)
    for fold in range(10):
        for j in range(10):
            k = fold * 10 + j
            a, b = pairs[k]
            assert issame[k] == (j < 5)
            assert a != b
            assert (labels[a] == labels[b]) == issame[k]


def test_conversion_writes_every_pack_and_the_bin(tmp_path):
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    _fake_set(src)
    split = idx_packs.convert_idx_set(
        src, out, [0, 2, 3], train_per_class=4, pairs_per_half=3, seed=5
    )
    train_images = read_idx(src / "train-images-idx3-ubyte.gz")
    train_labels = read_idx(src / "train-labels-idx1-ubyte.gz")
    test_images = read_idx(src / "t10k-images-idx3-ubyte.gz")
    test_labels = read_idx(src / "t10k-labels-idx1-ubyte.gz")

    closed_train = _pack_contents(out / "closed" / "train")
    assert len(closed_train) == 5 * 4
    for rgb, label in closed_train:
        index = int(rgb[0, 0, 0])  # pixel (0, 0) is the index in the source split
        assert np.array_equal(rgb, np.repeat(train_images[index][:, :, None], 3, axis=2))
        assert label == train_labels[index]
    assert FacePack(str(out / "closed" / "train")).num_classes == 5
    assert (out / "closed" / "train" / "property").read_text().strip() == "5,6,5"

    closed_test = _pack_contents(out / "closed" / "test")
    assert sorted(int(rgb[0, 0, 0]) for rgb, _ in closed_test) == list(range(25))

    open_train = _pack_contents(out / "open" / "train")
    assert len(open_train) == 3 * 4
    for rgb, label in open_train:
        assert [0, 2, 3][label] == train_labels[int(rgb[0, 0, 0])]

    vbin = read_verification_bin(str(out / "open" / "heldout.bin"))
    images = vbin.decode()
    assert images.shape == (2 * 60, 6, 5, 3)
    held_labels = test_labels[images[:, 0, 0, 0]]
    assert set(held_labels.tolist()) <= {1, 4}
    assert np.array_equal(images[:, :, :, 1], test_images[images[:, 0, 0, 0]])
    assert np.array_equal(held_labels[0::2] == held_labels[1::2], vbin.issame)
    assert vbin.issame.reshape(10, 6)[:, :3].all() and not vbin.issame.reshape(10, 6)[:, 3:].any()

    assert split == json.loads((out / "split.json").read_text())
    assert split["held_out_classes"] == [1, 4]
    assert split["counts"]["open_train"] == 12


def test_same_seed_same_output_other_seed_other_subset(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    _fake_set(src)
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        idx_packs.convert_idx_set(src, tmp_path / name, [0, 1], train_per_class=2, seed=seed)
    rec = Path("closed", "train", "train.rec")
    assert (tmp_path / "a" / rec).read_bytes() == (tmp_path / "b" / rec).read_bytes()
    assert (tmp_path / "a" / rec).read_bytes() != (tmp_path / "c" / rec).read_bytes()


def test_bad_class_choice_and_bad_options_exit_with_one_line(tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    _fake_set(src)
    assert (
        idx_to_packs.main([str(src), "--out", str(tmp_path / "o"), "--open-train-classes", "0-3"])
        == 2
    )
    assert "leaving at least 2 held out" in capsys.readouterr().err
    assert (
        idx_to_packs.main([str(src), "--out", str(tmp_path / "o"), "--train-per-class", "0"]) == 2
    )
    assert "--train-per-class must be >= 1" in capsys.readouterr().err
    assert idx_to_packs.main([str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")]) == 2
    assert "no train images idx file" in capsys.readouterr().err


def test_validation_split_partitions_the_train_pack(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    _fake_set(src)
    split = idx_packs.convert_idx_set(src, tmp_path / "o", [0, 1, 2], val_per_class=2, seed=3)
    train, fit, val = (
        [(image.tobytes(), label) for image, label in _pack_contents(tmp_path / "o" / "closed" / n)]
        for n in ("train", "fit", "val")
    )
    assert sorted(fit + val) == sorted(train) and not set(fit) & set(val)
    assert sorted(label for _, label in val) == sorted([0, 1, 2, 3, 4] * 2)
    assert split["counts"]["closed_val"] == 10 and split["counts"]["closed_fit"] == 20
    with pytest.raises(DataError, match="no image to fit"):
        idx_packs.convert_idx_set(src, tmp_path / "p", [0, 1, 2], val_per_class=6)


def test_fit_part_can_be_capped_per_class(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    _fake_set(src)
    split = idx_packs.convert_idx_set(
        src, tmp_path / "o", [0, 1, 2], val_per_class=2, fit_per_class=3, seed=3
    )
    train, fit, val = (
        [(image.tobytes(), label) for image, label in _pack_contents(tmp_path / "o" / "closed" / n)]
        for n in ("train", "fit", "val")
    )
    # 3 per class of the images not in val: a subset of train, disjoint from val
    assert sorted(label for _, label in fit) == sorted([0, 1, 2, 3, 4] * 3)
    assert set(fit) <= set(train) and not set(fit) & set(val)
    assert split["counts"]["closed_fit"] == 15 and split["counts"]["closed_val"] == 10
    with pytest.raises(DataError, match="needs --val-per-class"):
        idx_packs.convert_idx_set(src, tmp_path / "p", [0, 1, 2], fit_per_class=3)
