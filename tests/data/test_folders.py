"""Image folders: Dataset, folder -> pack -> folder round trip, bad input."""

import os

import numpy as np
import pytest

from facebench.data.folders import ImageFolderDataset, folder_to_pack, pack_to_folder
from facebench.data.images import encode_image, read_image
from facebench.data.packs import FacePack
from facebench.errors import DataError, WriteError


@pytest.fixture
def folder(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "faces"
    files = {}
    for name, count in (("alice", 2), ("bob", 1), ("carol", 3)):
        (root / name).mkdir(parents=True)
        for i in range(count):
            data = encode_image(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), ".png")
            (root / name / f"{i}.png").write_bytes(data)
            files.setdefault(name, []).append(data)
    (root / "bob" / "notes.txt").write_text("not an image")
    return root, files


def test_dataset_labels_and_uint8_images(folder):
    root, _ = folder
    data = ImageFolderDataset(root)
    assert data.classes == ["alice", "bob", "carol"]
    assert [label for _, label in data.samples] == [0, 0, 1, 2, 2, 2]
    x, y = data[2]
    assert y == 1 and x.shape == (8, 8, 3) and x.dtype == np.uint8
    np.testing.assert_array_equal(x, read_image(str(root / "bob" / "0.png")))


def test_folder_pack_folder_round_trip(folder, tmp_path):
    root, files = folder
    assert folder_to_pack(root, tmp_path / "pack", progress=False) == (6, 3)
    pack = FacePack(tmp_path / "pack")
    assert pack.num_classes == 3 and pack.property == (3, 8, 8)
    assert pack_to_folder(tmp_path / "pack", tmp_path / "back", progress=False) == (6, 3, [])
    for name, datas in files.items():
        names = sorted(os.listdir(tmp_path / "back" / name), key=lambda n: int(n.split(".")[0]))
        assert [(tmp_path / "back" / name / n).read_bytes() for n in names] == datas


def test_pack_to_folder_without_class_names(folder, tmp_path):
    root, _ = folder
    folder_to_pack(root, tmp_path / "pack", progress=False)
    os.remove(tmp_path / "pack" / "classes.txt")
    pack_to_folder(tmp_path / "pack" / "train.rec", tmp_path / "back", progress=False)
    assert sorted(os.listdir(tmp_path / "back")) == ["0000000", "0000001", "0000002"]


def test_broken_image_leaves_no_pack(folder, tmp_path):
    root, _ = folder
    (root / "carol" / "9.jpg").write_bytes(b"\xff\xd8 broken")
    with pytest.raises(DataError, match=r"carol/9\.jpg: image does not decode"):
        folder_to_pack(root, tmp_path / "pack", progress=False)
    assert sorted(os.listdir(tmp_path)) == ["faces"]


def test_mixed_sizes_rejected(folder, tmp_path):
    root, _ = folder
    (root / "bob" / "big.png").write_bytes(encode_image(np.zeros((9, 8, 3), np.uint8), ".png"))
    with pytest.raises(DataError, match=r"big\.png: image is 9x8, earlier images are 8x8"):
        folder_to_pack(root, tmp_path / "pack", progress=False)


def test_existing_output_refused(folder, tmp_path):
    root, _ = folder
    (tmp_path / "pack").mkdir()
    with pytest.raises(WriteError, match="already exists"):
        folder_to_pack(root, tmp_path / "pack", progress=False)


def test_empty_folder(tmp_path):
    with pytest.raises(DataError, match="no images"):
        ImageFolderDataset(tmp_path)
