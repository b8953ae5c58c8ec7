"""Verification bins: restricted unpickler, Python 2 pickles, uint8 arrays, folder round trip."""

import os
import pickle

import numpy as np
import pytest

from facebench.data.bins import (
    bin_to_folder,
    folder_to_bin,
    read_verification_bin,
    write_verification_bin,
)
from facebench.data.images import decode_image, encode_image
from facebench.errors import DataError


def rgb_images(n, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (6, 6, 3), dtype=np.uint8) for _ in range(n)]


def short_str(data: bytes) -> bytes:
    """A Python 2 ``str`` in a protocol-2 pickle (SHORT_BINSTRING / BINSTRING)."""
    if len(data) < 256:
        return b"U" + bytes([len(data)]) + data
    return b"T" + len(data).to_bytes(4, "little") + data


def py2_uint8_array(data: bytes) -> bytes:
    """A 1-D uint8 numpy array as numpy 1.x under Python 2 pickled it (protocol 2)."""
    return (
        b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85"
        + short_str(b"b")
        + b"\x87R(K\x01"
        + b"J"
        + len(data).to_bytes(4, "little")
        + b"\x85cnumpy\ndtype\n"
        + short_str(b"u1")
        + b"\x89\x88\x87R(K\x03"
        + short_str(b"|")
        + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb\x89"
        + short_str(data)
        + b"tb"
    )


def py2_bin(items: list[bytes], arrays: list[bytes], issame: list[bool]) -> bytes:
    """``pickle.dump((bins, issame_list), f, protocol=2)`` as Python 2 wrote it, byte by byte."""
    body = b"\x80\x02]q\x00(" + b"".join(short_str(x) for x in items)
    body += b"".join(py2_uint8_array(x) for x in arrays) + b"e]q\x01("
    body += b"".join(b"\x88" if x else b"\x89" for x in issame) + b"e\x86q\x02."
    return body


def test_python2_pickle_needs_bytes_encoding(tmp_path):
    jpegs = [encode_image(img) for img in rgb_images(4)]
    path = tmp_path / "old.bin"
    path.write_bytes(py2_bin(jpegs[:2], jpegs[2:], [True, False]))
    with pytest.raises(UnicodeDecodeError):
        pickle.loads(path.read_bytes())  # the plain default (ASCII) fails on JPEG bytes
    vbin = read_verification_bin(path)
    assert vbin.images[:2] == jpegs[:2]
    assert vbin.images[2].dtype == np.uint8 and vbin.images[2].tobytes() == jpegs[2]
    assert vbin.issame.tolist() == [True, False]
    decoded = vbin.decode()
    assert decoded.shape == (4, 6, 6, 3)
    for i, jpeg in enumerate(jpegs):
        np.testing.assert_array_equal(decoded[i], decode_image(jpeg))


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_numpy_pickles_of_uint8_images(tmp_path, protocol):
    images = rgb_images(4, seed=1)
    encoded = np.frombuffer(encode_image(images[0], ".png"), dtype=np.uint8)
    items = [images[1], encoded, images[2], images[3]]
    path = tmp_path / "arr.bin"
    with open(path, "wb") as f:
        pickle.dump((items, np.array([True, False])), f, protocol=protocol)
    vbin = read_verification_bin(path)
    decoded = vbin.decode()
    np.testing.assert_array_equal(decoded[0], images[1])
    np.testing.assert_array_equal(decoded[1], images[0])
    assert vbin.issame.tolist() == [True, False]


def test_write_read_round_trip(tmp_path):
    jpegs = [encode_image(img) for img in rgb_images(6)]
    issame = [True, False, True]
    write_verification_bin(tmp_path / "a.bin", jpegs, issame)
    vbin = read_verification_bin(tmp_path / "a.bin")
    assert vbin.images == jpegs and vbin.issame.tolist() == issame
    # the file is the plain (bins, issame_list) pickle InsightFace's loader expects
    with open(tmp_path / "a.bin", "rb") as f:
        bins, flags = pickle.load(f, encoding="bytes")
    assert bins == jpegs and flags == issame


class Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


@pytest.mark.parametrize("protocol", [0, 2, 5])
def test_malicious_pickle_does_not_run(tmp_path, monkeypatch, protocol):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "evil.bin").write_bytes(pickle.dumps(([b"x", Evil()], [True]), protocol=protocol))
    with pytest.raises(DataError, match=r"evil\.bin: refusing to unpickle (posix|os)\.system"):
        read_verification_bin(tmp_path / "evil.bin")
    assert not (tmp_path / "pwned").exists()


def test_object_array_refused(tmp_path):
    path = tmp_path / "obj.bin"
    path.write_bytes(pickle.dumps(([np.array([b"a"], dtype=object)] * 2, [True])))
    with pytest.raises(DataError, match="image 0 is ndarray, not bytes or uint8"):
        read_verification_bin(path)


def test_odd_image_count(tmp_path):
    path = tmp_path / "odd.bin"
    path.write_bytes(pickle.dumps(([b"a", b"b", b"c"], [True])))
    with pytest.raises(DataError, match=r"odd\.bin: odd number of images \(3\)"):
        read_verification_bin(path)


def test_issame_length_mismatch(tmp_path):
    path = tmp_path / "mis.bin"
    path.write_bytes(pickle.dumps(([b"a", b"b", b"c", b"d"], [True])))
    with pytest.raises(DataError, match="issame_list has 1 entries but bins hold 2 pairs"):
        read_verification_bin(path)


def test_not_a_pickle(tmp_path):
    path = tmp_path / "junk.bin"
    path.write_bytes(b"\x00\x01garbage")
    with pytest.raises(DataError, match=r"junk\.bin: not a readable bin pickle"):
        read_verification_bin(path)


def test_undecodable_image_named(tmp_path):
    write_verification_bin(tmp_path / "b.bin", [b"nope", b"nope"], [False])
    with pytest.raises(DataError, match=r"b\.bin: image 0: image does not decode"):
        read_verification_bin(tmp_path / "b.bin").decode()


def test_bin_folder_round_trip(tmp_path):
    images = rgb_images(4, seed=3)
    items = [encode_image(images[0]), encode_image(images[1], ".png"), images[2], images[3]]
    write_verification_bin(tmp_path / "a.bin", items, [False, True])
    assert bin_to_folder(tmp_path / "a.bin", tmp_path / "pairs", progress=False) == (2, [])
    names = sorted(os.listdir(tmp_path / "pairs"))
    assert names == ["00000_0.jpg", "00000_1.png", "00001_0.png", "00001_1.png", "issame.txt"]
    assert folder_to_bin(tmp_path / "pairs", tmp_path / "b.bin", progress=False) == 2
    back = read_verification_bin(tmp_path / "b.bin")
    assert back.images[:2] == items[:2]  # encoded images byte for byte
    assert back.issame.tolist() == [False, True]
    np.testing.assert_array_equal(back.decode()[2:], np.stack(images[2:]))  # arrays lossless


def test_folder_missing_pair_image(tmp_path):
    (tmp_path / "pairs").mkdir()
    (tmp_path / "pairs" / "issame.txt").write_text("1\n")
    with pytest.raises(DataError, match="pair 0 has no image 00000_0"):
        folder_to_bin(tmp_path / "pairs", tmp_path / "x.bin", progress=False)
