"""Gallery against brute-force cosine search written with Python loops."""

import numpy as np
import pytest

from facebench.errors import DataError
from facebench.search import UNKNOWN, Gallery, decide

EPS32 = float(np.finfo(np.float32).eps)  # 1.19e-7


def unit_rows(n, d, seed):
    x = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def brute_force(gallery_x, gallery_ids, probes, k):
    """Cosine of every pair by loops, sorted descending (ties: lower row first)."""
    out_cos, out_ids = [], []
    for p in probes:
        scored = []
        for row, g in enumerate(gallery_x):
            cos = sum(float(a) * float(b) for a, b in zip(p, g, strict=True))
            cos /= np.sqrt(sum(float(a) ** 2 for a in p)) * np.sqrt(sum(float(b) ** 2 for b in g))
            scored.append((-cos, row))
        scored.sort()
        out_cos.append([-c for c, _ in scored[:k]])
        out_ids.append([gallery_ids[r] for _, r in scored[:k]])
    return np.array(out_cos), np.array(out_ids)


def test_flat_search_matches_brute_force_and_normalizes():
    g = unit_rows(40, 8, 0) * np.random.default_rng(1).uniform(0.5, 3, size=(40, 1))
    ids = np.arange(40) // 2
    probes = unit_rows(6, 8, 2) * 7.0
    gallery = Gallery(8)
    gallery.add(g, ids)
    cos, found = gallery.search(probes, k=5)
    ref_cos, ref_ids = brute_force(g, ids, probes, 5)
    # float32 inner products of unit rows: d products whose |terms| add up to at most 1 round
    # by at most (d - 1) * 2**-24, the rows' own rounding to float32 by 2 * 2**-24: under d * eps
    np.testing.assert_allclose(cos, ref_cos, rtol=0, atol=8 * EPS32)
    np.testing.assert_array_equal(found, ref_ids)


def test_incremental_add_equals_one_add_and_k_is_capped():
    g, ids = unit_rows(30, 4, 3), [f"person{i % 7}" for i in range(30)]
    one, two = Gallery(4), Gallery(4)
    one.add(g, ids)
    two.add(g[:11], ids[:11])
    two.add(g[11:], ids[11:])
    probes = unit_rows(5, 4, 4)
    for a, b in zip(one.search(probes, 3), two.search(probes, 3), strict=True):
        np.testing.assert_array_equal(a, b)
    cos, found = one.search(probes, k=100)
    assert cos.shape == found.shape == (5, 30)


@pytest.mark.parametrize("ids", [np.arange(25) % 5, [f"id{i % 5}" for i in range(25)]])
def test_save_load_round_trip(tmp_path, ids):
    g = unit_rows(25, 6, 5)
    gallery = Gallery(6, "Flat")
    gallery.add(g, ids)
    path = tmp_path / "g.index"
    gallery.save(str(path))
    loaded = Gallery.load(str(path))
    assert len(loaded) == 25 and loaded.dim == 6 and loaded.factory == "Flat"
    probes = unit_rows(4, 6, 6)
    for a, b in zip(gallery.search(probes, 3), loaded.search(probes, 3), strict=True):
        np.testing.assert_array_equal(a, b)
    loaded.add(g[:2], list(np.asarray(ids)[:2]))
    assert len(loaded) == 27
    assert [p.name for p in tmp_path.iterdir()] == ["g.index"]


def test_ivf_is_trained_on_first_add_and_exact_with_full_nprobe():
    g, ids = unit_rows(400, 8, 7), np.arange(400)
    gallery = Gallery(8, "IVF4,Flat")
    gallery.add(g, ids)
    gallery.set_search_params("nprobe=4")
    probes = unit_rows(10, 8, 8)
    cos, found = gallery.search(probes, 3)
    ref_cos, ref_ids = brute_force(g, ids, probes, 3)
    np.testing.assert_allclose(cos, ref_cos, rtol=0, atol=8 * EPS32)  # as above, d = 8
    np.testing.assert_array_equal(found, ref_ids)


def test_decide_uses_strict_global_threshold():
    cos = np.array([0.5, 0.3, 0.29, -0.1])
    ids = np.array([3, 4, 5, 6])
    assert decide(cos, ids, 0.3) == [3, UNKNOWN, UNKNOWN, UNKNOWN]
    assert decide(cos, ids, -1.0) == [3, 4, 5, 6]
    gallery = Gallery(4)
    g = unit_rows(3, 4, 9)
    gallery.add(g, ["a", "b", "c"])
    labels, top = gallery.identify(np.vstack([g[1], -g[1]]), threshold=0.9)
    # a unit row with itself: 4 float32 products and the row's rounding, under d * eps (d = 4)
    assert labels[0] == "b" and top[0] == pytest.approx(1.0, rel=0, abs=4 * EPS32)
    assert labels[1] == UNKNOWN or top[1] > 0.9


def test_dimension_mismatch_and_bad_identities():
    gallery = Gallery(8)
    with pytest.raises(DataError, match="gallery dimension 8"):
        gallery.add(unit_rows(3, 7, 0), [1, 2, 3])
    with pytest.raises(DataError, match="identities of shape"):
        gallery.add(unit_rows(3, 8, 0), [1, 2])
    gallery.add(unit_rows(3, 8, 0), [1, 2, 3])
    with pytest.raises(DataError, match="gallery dimension 8"):
        gallery.search(unit_rows(2, 16, 0), 1)
    with pytest.raises(DataError, match="identities are"):
        gallery.add(unit_rows(1, 8, 0), ["x"])
    with pytest.raises(DataError, match="empty"):
        Gallery(8).search(unit_rows(1, 8, 0), 1)
    with pytest.raises(DataError, match="cannot train"):
        Gallery(8, "IVF64,Flat").add(unit_rows(10, 8, 0), np.arange(10))


def test_corrupt_files_raise_data_error(tmp_path):
    gallery = Gallery(4)
    gallery.add(unit_rows(10, 4, 0), np.arange(10))
    good = tmp_path / "g.index"
    gallery.save(str(good))
    data = good.read_bytes()
    cases = {
        "truncated": data[: len(data) - 20],
        "foreign": b"not an index at all",
        "trailing": data + b"x",
        "header": data[:18] + b"[" + data[19:],
    }
    for name, blob in cases.items():
        path = tmp_path / f"{name}.index"
        path.write_bytes(blob)
        with pytest.raises(DataError, match=f"{name}.index"):
            Gallery.load(str(path))
    with pytest.raises(DataError, match="cannot open"):
        Gallery.load(str(tmp_path / "missing.index"))


@pytest.mark.parametrize("factory", ["PQ4x4", "HNSW8", "IVF4,PQ4x4"])
def test_approximate_factories_train_and_find_their_own_rows(factory, tmp_path):
    g = unit_rows(300, 16, 11)
    gallery = Gallery(16, factory)
    gallery.add(g, np.arange(300))
    assert gallery.index.is_trained
    if factory.startswith("IVF"):
        gallery.set_search_params("nprobe=4")
    cos, found = gallery.search(g[:50], 5)
    assert (found[:, 0] == np.arange(50)).mean() > 0.7  # approximate, but mostly itself
    assert np.all(np.diff(cos, axis=1) <= 1e-6)  # descending
    gallery.save(str(tmp_path / "a.index"))
    loaded = Gallery.load(str(tmp_path / "a.index"))
    if factory.startswith("IVF"):
        loaded.set_search_params("nprobe=4")  # search parameters are not stored in the file
    np.testing.assert_array_equal(loaded.search(g[:50], 5)[1], found)
