"""InsightFace pack semantics: meta record at the end, identity ranges, property, Dataset."""

import numpy as np
import pytest
import torch

from facebench.data.images import encode_image
from facebench.data.packs import FacePack, PackDataset, read_property, write_face_pack
from facebench.data.recordio import IndexedRecordReader, IndexedRecordWriter, IRHeader, pack_record
from facebench.errors import DataError


def tiny_images(n, seed=0, size=8):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(n)]


@pytest.fixture
def pack_dir(tmp_path):
    images = tiny_images(7)
    labels = [0, 0, 0, 1, 2, 2, 2]
    samples = [(lab, encode_image(img, ".png")) for lab, img in zip(labels, images, strict=True)]
    counts = write_face_pack(tmp_path / "pack", samples, (8, 8))
    return tmp_path / "pack", images, labels, counts


def test_write_face_pack_layout(pack_dir):
    path, _, _, counts = pack_dir
    assert counts == (7, 3)
    assert read_property(path / "property") == (3, 8, 8)
    reader = IndexedRecordReader(path / "train.rec")
    # meta record: key 0, written last (near the end of the file), labels [a, b]
    offsets = {int(k): reader.offset(int(k)) for k in reader.keys}
    assert offsets[0] == max(offsets.values())
    header, image = reader.read_record(0)
    assert header.flag == 2 and list(header.label) == [8, 11] and image == b""
    ranges = [list(reader.read_record(k)[0].label) for k in range(8, 11)]
    assert ranges == [[1, 4], [4, 5], [5, 8]]


def test_face_pack_reads_back(pack_dir):
    path, images, labels, _ = pack_dir
    pack = FacePack(path)
    assert list(pack.image_keys) == list(range(1, 8))
    assert pack.num_classes == 3
    np.testing.assert_array_equal(pack.identities, [[1, 4], [4, 5], [5, 8]])
    for key, (img, lab) in enumerate(zip(images, labels, strict=True), start=1):
        np.testing.assert_array_equal(pack.read_image(key), img)  # PNG: lossless, RGB kept
        assert pack.label(key) == lab
    assert FacePack(path / "train.rec").num_classes == 3


def test_plain_im2rec_pack_without_meta(tmp_path):
    """No key 0 meta record: every key is an image, array labels use labels[0]."""
    images = tiny_images(3, seed=1)
    with IndexedRecordWriter(tmp_path / "plain.rec") as writer:
        writer.write(2, pack_record(IRHeader(0, 5.0, 2, 0), encode_image(images[0], ".png")))
        writer.write(0, pack_record(IRHeader(0, 1.0, 0, 0), encode_image(images[1], ".png")))
        labels = np.array([4.0, 0.5], np.float32)
        writer.write(1, pack_record(IRHeader(2, labels, 1, 0), encode_image(images[2], ".png")))
    pack = FacePack(tmp_path / "plain.rec")
    assert pack.meta is None and pack.identities is None
    assert list(pack.image_keys) == [0, 1, 2]
    assert [pack.label(k) for k in (0, 1, 2)] == [1, 4, 5]
    assert pack.num_classes == 6  # no property file: scan of labels
    np.testing.assert_array_equal(pack.read_image(1), images[2])


def test_pack_dataset_uint8_images_and_flip(pack_dir):
    path, images, labels, _ = pack_dir
    data = PackDataset(path)
    x, y = data[3]
    assert x.dtype == np.uint8 and x.shape == (8, 8, 3) and y == labels[3]
    np.testing.assert_array_equal(x, images[3])
    flipped = PackDataset(path, random_flip=True)
    torch.manual_seed(0)
    seen = {bool(np.array_equal(flipped[3][0], x)) for _ in range(20)}
    assert seen == {True, False}
    torch.manual_seed(1)
    for _ in range(10):
        out = flipped[3][0]
        assert np.array_equal(out, x) or np.array_equal(out, x[:, ::-1])


def test_non_contiguous_labels_rejected_and_nothing_written(tmp_path):
    img = encode_image(tiny_images(1)[0], ".png")
    with pytest.raises(DataError, match="label 0 are not contiguous"):
        write_face_pack(tmp_path / "p", [(0, img), (1, img), (0, img)], (8, 8))
    assert not (tmp_path / "p").exists()  # not even the folder the write created


def test_undecodable_image_names_key(tmp_path):
    write_face_pack(tmp_path / "p", [(0, b"not a jpeg")], (8, 8))
    with pytest.raises(DataError, match=r"train\.rec: key 1: image does not decode"):
        FacePack(tmp_path / "p").read_image(1)


def test_bad_property_file(pack_dir):
    path, *_ = pack_dir
    (path / "property").write_text("lots,112\n")
    with pytest.raises(DataError, match="property: expected 'num_classes,H,W'"):
        FacePack(path)


def test_not_a_pack(tmp_path):
    with pytest.raises(DataError, match=r"no train\.rec"):
        FacePack(tmp_path)


@pytest.mark.parametrize("kind", ["jpeg", "grey jpeg", "png with alpha", "bmp"])
def test_decoding_to_rgb_matches_bgr_decoding_swapped(kind):
    # decode_image asks the codec for RGB; the pixels are those of OpenCV's BGR decode, swapped
    import cv2

    from facebench.data.images import decode_image

    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (24, 20, 4), dtype=np.uint8)
    ext, pixels = {
        "jpeg": (".jpg", image[..., :3]),
        "grey jpeg": (".jpg", image[..., 0]),
        "png with alpha": (".png", image),
        "bmp": (".bmp", image[..., :3]),
    }[kind]
    data = cv2.imencode(ext, pixels)[1].tobytes()
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    np.testing.assert_array_equal(decode_image(data), cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
