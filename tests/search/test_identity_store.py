"""The gallery file's identity store: int64 codes (and sorted names for string identities) in a
binary section, memory-mapped on load; format-1 files (identities as JSON) still load."""

import json
import struct
from pathlib import Path

import faiss
import numpy as np
import pytest

from facebench.errors import DataError
from facebench.search import Gallery
from facebench.search import gallery_file as gallery_module


def unit_rows(n, d, seed):
    x = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def nearest(g, ids, probes, k):
    """Identities of the k rows of largest cosine, by a plain sort of every score."""
    order = np.argsort(-(probes.astype(np.float64) @ g.astype(np.float64).T), axis=1, kind="stable")
    return np.array(ids, dtype=object)[order[:, :k]]


def header_of(path):
    data = Path(path).read_bytes()
    (size,) = struct.unpack("<Q", data[10:18])
    return data[:10], json.loads(data[18 : 18 + size])


def test_string_identities_merge_across_adds():
    g = unit_rows(12, 8, 0)
    first = ["bob", "ann", "bob", "dee", "ann", "bob"]
    second = ["cy", "ann", "émile", "cy", "bob", "bob"]
    gallery = Gallery(8)
    gallery.add(g[:6], first)
    gallery.add(g[6:], second)
    assert gallery.identities.tolist() == first + second
    assert gallery.identity_count() == 5 and gallery.most_rows_of_one_identity() == 5
    probes = unit_rows(7, 8, 1)
    found = gallery.search(probes, 4)[1]
    np.testing.assert_array_equal(found, nearest(g, first + second, probes, 4))


@pytest.mark.parametrize(
    ("ids", "stored"),
    [
        (np.arange(3000) // 3 - 7, "<i4"),
        (np.arange(3000) // 3 + 2**31 - 500, "<i8"),  # beyond int32
        ([f"p{i // 3}" for i in range(3000)], "<i4"),
    ],
)
def test_identities_are_a_mapped_section_not_json(tmp_path, ids, stored):
    g = unit_rows(3000, 8, 2)
    gallery = Gallery(8)
    gallery.add(g, ids)
    path = str(tmp_path / "g.index")
    gallery.save(path)
    magic, header = header_of(path)
    assert magic == b"FBGALLERY\x02" and "identities" not in header
    assert header["sections"]["codes"] == {"dtype": stored, "count": 3000, "offset": 0}
    loaded = Gallery.load(path)
    assert isinstance(loaded.codes, np.memmap)
    assert loaded.identities.tolist() == list(ids.tolist() if hasattr(ids, "tolist") else ids)
    assert loaded.search(g[:1], 1)[1].dtype == gallery.search(g[:1], 1)[1].dtype
    assert loaded.identity_count() == 1000 and loaded.most_rows_of_one_identity() == 3
    probes = g[::100] + 0.01
    np.testing.assert_array_equal(loaded.search(probes, 2)[1], gallery.search(probes, 2)[1])


@pytest.mark.parametrize("ids", [[5, 5, 9, 2, 9, 9], ["x", "y", "x", "z", "z", "z"], []])
def test_format_1_files_still_load(tmp_path, ids):
    """A file as format 1 wrote it: the identities as a JSON list in the header."""
    g = unit_rows(len(ids), 4, 3)
    index = faiss.IndexFlatIP(4)
    index.add(g)
    header = json.dumps(
        {"dim": 4, "factory": "Flat", "count": len(ids), "identities": ids, "lists": None}
    ).encode()
    path = tmp_path / "old.index"
    blob = faiss.serialize_index(index).tobytes()
    path.write_bytes(b"FBGALLERY\x01" + struct.pack("<Q", len(header)) + header + blob)
    old = Gallery.load(str(path))
    assert old.identities.tolist() == ids and len(old) == len(ids)
    if ids:
        probes = unit_rows(3, 4, 4)
        np.testing.assert_array_equal(old.search(probes, 3)[1], nearest(g, ids, probes, 3))
        old.add(g[:1], ids[:1])  # extended and written as format 2
        old.save(str(path))
        assert header_of(path)[0] == b"FBGALLERY\x02"
        assert Gallery.load(str(path)).identities.tolist() == ids + ids[:1]


def test_bad_sections_are_corrupt_files(tmp_path):
    gallery = Gallery(4)
    gallery.add(unit_rows(6, 4, 5), ["a", "b", "c", "a", "b", "c"])
    path = tmp_path / "g.index"
    gallery.save(str(path))
    data = path.read_bytes()
    (size,) = struct.unpack("<Q", data[10:18])
    codes_at = gallery_module._aligned(18 + size)
    wild = bytearray(data)
    wild[codes_at : codes_at + 4] = struct.pack("<i", 3)  # names has 3 entries: 0..2
    cut = data[: codes_at + 16]
    for name, blob, reason in (("wild", wild, "out of range"), ("cut", cut, "bad codes section")):
        (tmp_path / f"{name}.index").write_bytes(bytes(blob))
        with pytest.raises(DataError, match=f"{name}.index: corrupt gallery index.*{reason}"):
            Gallery.load(str(tmp_path / f"{name}.index"))
