"""Galleries from several embedding files, streamed; on-disk inverted lists; bad shard lists."""

import os
import re
from pathlib import Path

import numpy as np
import pytest

from facebench.cli import main
from facebench.embed.io import save_embeddings
from facebench.errors import DataError
from facebench.search import Gallery, shards
from facebench.search.service import add_to_gallery, build_gallery


def clustered(n, d, seed):
    """Rows near 8 centres (IVF lists of very different sizes) and their centre as identity."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(8, d))
    who = rng.integers(0, 8, n)
    return (centres[who] + 0.3 * rng.normal(size=(n, d))).astype(np.float32), who


@pytest.fixture
def three_shards(tmp_path, monkeypatch):
    """600 x 16 rows in three files of 250, 200 and 150 rows; chunks of 64 rows."""
    monkeypatch.setattr(shards, "CHUNK_ROWS", 64)
    x, who = clustered(600, 16, 0)
    paths = []
    for i, (a, b) in enumerate(((0, 250), (250, 450), (450, 600))):
        path = str(tmp_path / f"s{i}.npy")
        save_embeddings(path, x[a:b], {"identities": who[a:b].tolist()})
        paths.append(path)
    return paths, x, who


def test_sample_rows_are_the_picked_rows(three_shards):
    paths, x, _ = three_shards
    opened = shards.open_shards(paths)
    picks = np.sort(np.random.default_rng(5).choice(600, 100, replace=False))
    np.testing.assert_array_equal(shards.sample_rows(opened, 100, seed=5), x[picks])
    np.testing.assert_array_equal(shards.sample_rows(opened, 10_000), x)


def test_shards_build_the_same_gallery_as_one_array(three_shards, tmp_path):
    paths, x, who = three_shards
    built = build_gallery(paths, str(tmp_path / "g.index"))
    whole = Gallery(16)
    whole.add(x, who)
    probes = x[::7] + 0.01
    for got, want in zip(built.search(probes, 5), whole.search(probes, 5), strict=True):
        np.testing.assert_array_equal(got, want)
    assert Gallery.load(str(tmp_path / "g.index")).identities.tolist() == who.tolist()


def test_on_disk_lists_search_and_add_like_memory(three_shards, tmp_path):
    paths, x, _ = three_shards
    kwargs = {"factory": "IVF4,Flat", "train_rows": 300}
    memory = build_gallery(paths[:2], str(tmp_path / "m.index"), **kwargs)
    disk_path = str(tmp_path / "d.index")
    build_gallery(paths[:2], disk_path, on_disk=True, **kwargs)
    assert os.path.getsize(disk_path + ".ivfdata") > 0
    assert os.path.getsize(disk_path) < os.path.getsize(str(tmp_path / "m.index"))
    before = {p: Path(p).read_bytes() for p in (disk_path, disk_path + ".ivfdata")}
    with pytest.raises(DataError, match="-d embeddings"):
        bad = str(tmp_path / "bad.npy")
        save_embeddings(bad, np.ones((3, 8), np.float32), {"identities": [0, 1, 2]})
        add_to_gallery(disk_path, [bad])
    assert before == {p: Path(p).read_bytes() for p in before}  # untouched on failure
    add_to_gallery(str(tmp_path / "m.index"), paths[2:])
    add_to_gallery(disk_path, paths[2:])
    assert sorted(os.listdir(tmp_path)) == sorted(
        [f"{n}.{e}" for n in ("s0", "s1", "s2", "bad") for e in ("npy", "json")]
        + ["m.index", "d.index", "d.index.ivfdata"]
    )
    disk, memory = Gallery.load(disk_path), Gallery.load(str(tmp_path / "m.index"))
    assert disk.lists_path == disk_path + ".ivfdata" and len(disk) == 600
    for g in (disk, memory):
        g.set_search_params("nprobe=4")  # every list: exact
    probes = x[::5] + 0.01
    for got, want in zip(disk.search(probes, 3), memory.search(probes, 3), strict=True):
        np.testing.assert_array_equal(got, want)
    exact = Gallery(16)
    exact.add(x, np.arange(600))
    _, rows = exact.search(probes, 1)
    assert (disk.search(probes, 1)[1][:, 0] == memory.identities[rows[:, 0]]).all()


def test_bad_shard_lists_are_one_line_errors(three_shards, tmp_path, capsys):
    paths, _, _ = three_shards
    wide = str(tmp_path / "wide.npy")
    save_embeddings(wide, np.ones((4, 32), np.float32), {"identities": [1, 2, 3, 4]})
    half = str(tmp_path / "half.npy")
    np.save(half, np.ones((4, 16), np.float16))
    out = str(tmp_path / "g.index")
    cases = [
        ([paths[0], str(tmp_path / "nope.npy")], "nope.npy: no such embedding file"),
        ([paths[0], wide], "wide.npy: 32-d embeddings, .*s0.npy holds 16-d"),
        ([paths[0], half], "half.npy: float16 embeddings, .*s0.npy holds float32"),
    ]
    for files, message in cases:
        assert main(["index", "build", "--embeddings", *files, "--out", out]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and err.startswith("facebench: error: ")
        assert re.search(message, err), err
    argv = ["index", "build", "--embeddings", *paths, "--out", out, "--on-disk"]
    assert main(argv) == 2
    assert "--on-disk needs an IVF index" in capsys.readouterr().err
    assert not [n for n in os.listdir(tmp_path) if "index" in n]
