"""A pack's batched read (``PackDataset.__getitems__``, the fast path from the memory map) gives
exactly what reading item by item gives: pixels, labels, flips and errors."""

import struct

import numpy as np
import pytest
import torch

from facebench.data.images import encode_image
from facebench.data.packs import PackDataset, write_property
from facebench.data.recordio import MAGIC, IndexedRecordWriter, IRHeader, pack_record
from facebench.errors import DataError


def faces(n, size=16, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(n)]


def with_comment(jpeg: bytes, text: bytes) -> bytes:
    """The JPEG with a COM segment holding ``text`` right after its start marker."""
    return jpeg[:2] + b"\xff\xfe" + struct.pack(">H", len(text) + 2) + text + jpeg[2:]


def write_plain_pack(directory, records, classes, size=16):
    """A pack without meta record: ``records`` is [(header, image bytes)], keys 0..n-1; a
    header id of 1 becomes the record's key."""
    directory.mkdir()
    with IndexedRecordWriter(directory / "train.rec") as writer:
        for key, (header, image) in enumerate(records):
            header = header._replace(id=key if header.id == 1 else header.id)
            writer.write(key, pack_record(header, image))
    write_property(str(directory / "property"), classes, size, size)
    return directory


@pytest.fixture
def mixed_pack(tmp_path):
    """JPEGs (the fast path) among records the fast path hands on: a PNG, an array label, a
    header id of 0, and a JPEG whose payload holds the RecordIO magic word (a 3-part record)."""
    images = faces(12)
    jpeg = [encode_image(img, ".jpg") for img in images]
    magic = with_comment(jpeg[5], b"ab" + struct.pack("<I", MAGIC) * 3)
    records = [(IRHeader(0, float(i % 3), 1), jpeg[i]) for i in range(12)]
    records[2] = (IRHeader(0, 2.0, 1), encode_image(images[2], ".png"))
    records[4] = (IRHeader(2, np.array([1.0, 7.0], np.float32), 1), jpeg[4])
    records[5] = (IRHeader(0, 2.0, 1), magic)
    records[7] = (IRHeader(0, 1.0, 0), jpeg[7])
    return write_plain_pack(tmp_path / "pack", records, classes=3)


def item_by_item(data, indices):
    rows = [data[i] for i in indices]
    return np.stack([image for image, _ in rows]), [label for _, label in rows]


def test_batches_equal_items(mixed_pack):
    data = PackDataset(str(mixed_pack))
    assert not np.shares_memory(data.pack.reader.payload_view(5), data.pack.reader._bytes)
    for order in ([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], [11, 5, 2, 4, 7, 0], [3]):
        batch = data.__getitems__(order)
        images, labels = item_by_item(data, order)
        np.testing.assert_array_equal(batch.images, images)
        assert batch.labels == labels
        assert batch.batch.dtype == torch.uint8


def test_flipped_batches_draw_the_same_flips(mixed_pack):
    data = PackDataset(str(mixed_pack), random_flip=True)
    order = [9, 3, 5, 2, 0, 11, 4]
    torch.manual_seed(7)
    batch = data.__getitems__(order)
    torch.manual_seed(7)
    images, labels = item_by_item(data, order)
    np.testing.assert_array_equal(batch.images, images)
    assert batch.labels == labels
    unflipped, _ = item_by_item(PackDataset(str(mixed_pack)), order)
    assert not np.array_equal(images, unflipped)  # some rows were mirrored


def bad_pack(tmp_path, bad):
    jpeg = [encode_image(img, ".jpg") for img in faces(4)]
    records = [(IRHeader(0, 0.0, 1), image) for image in jpeg]
    records[2] = bad(jpeg[2])
    return write_plain_pack(tmp_path / "bad", records, classes=2)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (lambda jpeg: (IRHeader(0, 5.0, 1), jpeg), "label 5 is not a class"),
        (lambda jpeg: (IRHeader(0, 0.5, 1), jpeg), "label 0.5 is not a class"),
        (lambda jpeg: (IRHeader(0, 1.0, 1), jpeg[:-2]), "truncated JPEG|does not decode"),
        (lambda jpeg: (IRHeader(0, 1.0, 1), jpeg[:40] + b"\xff\xd9"), "does not decode"),
        (
            lambda jpeg: (IRHeader(0, 1.0, 1), encode_image(faces(1, size=8)[0], ".jpg")),
            "image is 8x8",
        ),
        (lambda jpeg: (IRHeader(0, 1.0, 9), jpeg), "points at the wrong record"),
        (lambda jpeg: (IRHeader(0, 1.0, 1), b""), "does not decode"),
        (lambda jpeg: (IRHeader(0, 1.0, 1), b"\xd9"), "does not decode"),
    ],
)
def test_batch_errors_are_the_item_errors(tmp_path, bad, message):
    data = PackDataset(str(bad_pack(tmp_path, bad)))
    with pytest.raises(DataError, match=message) as item:
        data[2]
    with pytest.raises(DataError) as batch:
        data.__getitems__([0, 1, 2, 3])
    assert str(batch.value) == str(item.value)


def test_a_pack_without_property_refuses_a_batch_of_mixed_sizes(tmp_path):
    jpeg = [encode_image(img, ".jpg") for img in faces(2)]
    small = encode_image(faces(1, size=8)[0], ".jpg")
    records = [(IRHeader(0, 0.0, 1), jpeg[0]), (IRHeader(0, 0.0, 1), small)]
    directory = write_plain_pack(tmp_path / "p", records, classes=1)
    (directory / "property").unlink()
    data = PackDataset(str(directory))
    with pytest.raises(DataError, match=r"key 1: image is 8x8, the first of its batch 16x16"):
        data.__getitems__([0, 1])
