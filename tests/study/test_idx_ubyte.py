"""The idx-ubyte reader and writer: a hand-built fixture from the format, round trips, bad input."""

import gzip

import numpy as np
import pytest

from facebench.data.idx_ubyte import find_idx_file, load_idx_split, read_idx, write_idx
from facebench.errors import DataError


def test_hand_built_fixture_reads_as_written_in_the_format(tmp_path):
    # magic 00 00 08 03, sizes 2, 2, 3 (big-endian uint32), then 12 bytes in C order
    data = bytes([0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 3]) + bytes(range(12))
    (tmp_path / "x-idx3-ubyte").write_bytes(data)
    array = read_idx(tmp_path / "x-idx3-ubyte")
    assert array.dtype == np.uint8 and array.shape == (2, 2, 3)
    assert array[1, 0, 2] == 1 * 6 + 0 * 3 + 2


def test_big_endian_int32_fixture(tmp_path):
    data = (
        bytes([0, 0, 0x0C, 1, 0, 0, 0, 2])
        + (258).to_bytes(4, "big")
        + (-1).to_bytes(4, "big", signed=True)
    )
    (tmp_path / "y").write_bytes(data)
    assert read_idx(tmp_path / "y").tolist() == [258, -1]


@pytest.mark.parametrize("dtype", ["u1", "i1", "i2", "i4", "f4", "f8"])
@pytest.mark.parametrize("name", ["a-idx3-ubyte", "a-idx3-ubyte.gz"])
def test_round_trip_every_type_plain_and_gzipped(tmp_path, dtype, name):
    rng = np.random.default_rng(0)
    array = (rng.normal(size=(4, 3, 5)) * 100).astype(dtype)
    write_idx(tmp_path / name, array)
    raw = (tmp_path / name).read_bytes()
    assert (raw[:2] == b"\x1f\x8b") == name.endswith(".gz")
    back = read_idx(tmp_path / name)
    assert back.dtype == np.dtype(dtype) and np.array_equal(back, array)


def test_gzip_detected_by_content_not_name(tmp_path):
    write_idx(tmp_path / "plain-name", np.arange(6, dtype=np.uint8), compress=True)
    assert read_idx(tmp_path / "plain-name").tolist() == list(range(6))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x00\x00", "too short"),
        (b"\x01\x00\x08\x01\x00\x00\x00\x01\x05", "bad idx magic"),
        (b"\x00\x00\x07\x01\x00\x00\x00\x01\x05", "unknown idx type code 0x07"),
        (b"\x00\x00\x08\x02\x00\x00\x00\x01", "truncated header"),
        (b"\x00\x00\x08\x01\x00\x00\x00\x03\x05", "truncated"),
        (b"\x00\x00\x08\x01\x00\x00\x00\x01\x05\x06", "trailing bytes"),
        (b"\x1f\x8b\x08\x00garbage", "corrupt gzip"),
    ],
)
def test_bad_files_name_the_file_and_problem(tmp_path, data, message):
    path = tmp_path / "bad-idx1-ubyte"
    path.write_bytes(data)
    with pytest.raises(DataError, match=message) as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_missing_file_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="cannot read"):
        read_idx(tmp_path / "nope")


def _write_split(root, split, images, labels, sep="-", gz=".gz"):
    write_idx(root / f"{split}-images{sep}idx3-ubyte{gz}", images)
    write_idx(root / f"{split}-labels{sep}idx1-ubyte{gz}", labels)


@pytest.mark.parametrize(("sep", "gz"), [("-", ".gz"), ("-", ""), (".", "")])
def test_load_split_finds_usual_names(tmp_path, sep, gz):
    images = np.arange(2 * 4 * 4, dtype=np.uint8).reshape(2, 4, 4)
    _write_split(tmp_path, "t10k", images, np.array([3, 1], dtype=np.uint8), sep, gz)
    got_images, got_labels = load_idx_split(tmp_path, "t10k")
    assert np.array_equal(got_images, images) and got_labels.tolist() == [3, 1]
    assert got_labels.dtype == np.int64


def test_load_split_checks_counts_and_presence(tmp_path):
    images = np.zeros((3, 4, 4), dtype=np.uint8)
    _write_split(tmp_path, "train", images, np.zeros(2, dtype=np.uint8))
    with pytest.raises(DataError, match="2 labels for 3 images"):
        load_idx_split(tmp_path, "train")
    with pytest.raises(DataError, match="no t10k images idx file"):
        find_idx_file(tmp_path, "t10k", "images")


def test_write_is_atomic_on_unsupported_dtype(tmp_path):
    with pytest.raises(DataError, match="cannot store dtype"):
        write_idx(tmp_path / "z", np.zeros(3, dtype=np.int64))
    assert list(tmp_path.iterdir()) == []


def test_reads_the_debian_fashion_mnist_layout_if_installed():
    root = "/usr/share/datasets/fashion-mnist"
    try:
        path = find_idx_file(root, "t10k", "labels")
    except DataError:
        pytest.skip("dataset-fashion-mnist is not installed")
    labels = read_idx(path)
    assert labels.shape == (10000,) and np.bincount(labels).tolist() == [1000] * 10
    with gzip.open(path) as f:
        assert f.read(4) == b"\x00\x00\x08\x01"
