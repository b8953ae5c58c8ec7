"""Numeric sanity (issue 15.6): one check of embedding rows (finite, not all zero) with an
overflow-free norm, applied alike by verify, index build/add, identify and search, errors naming
the file; eval bins checked before a model is built."""

import json
import math
import pickle

import numpy as np
import pytest

from facebench.cli import main
from facebench.data.images import encode_image
from facebench.embedding_rows import row_norms, unit_rows
from facebench.errors import DataError

DIM, PEOPLE = 8, 6


def reference_unit(rows: np.ndarray) -> np.ndarray:
    """Slow and obvious: each value over ``math.hypot`` of its row (exact scaling, no overflow)."""
    return np.array([[v / math.hypot(*row) for v in row] for row in rows.tolist()])


@pytest.mark.parametrize(
    ("scale", "dtype"),
    [(1e-40, np.float32), (1.0, np.float32), (3e38, np.float32), (1e300, np.float64)],
)
def test_unit_rows_match_the_reference_at_any_magnitude(scale, dtype):
    rng = np.random.default_rng(0)
    x = (rng.uniform(-1, 1, (30, DIM)) * scale).astype(dtype)
    np.testing.assert_allclose(unit_rows(x, "x", np.float64), reference_unit(x), rtol=1e-12)
    hypot = np.array([math.hypot(*row) for row in x.tolist()])
    np.testing.assert_allclose(row_norms(x, "x"), hypot, rtol=1e-12)
    if scale >= 3e38:  # what a plain float32 norm gives: overflow, then zero rows
        with np.errstate(over="ignore"):
            assert np.isinf(np.einsum("ij,ij->i", x, x)).all()


@pytest.mark.parametrize(
    ("row", "value", "message"),
    [
        (4, np.nan, "row 4 is not finite"),
        (2, np.inf, "row 2 is not finite"),
        (7, 0.0, "row 7 is all zeros"),
    ],
)
def test_bad_rows_are_named(row, value, message):
    x = np.ones((9, DIM), np.float32)
    x[row] = value
    with pytest.raises(DataError, match=f"^emb.npy: embedding {message}"):
        unit_rows(x, "emb.npy")


def save(path, rows, labels=None):
    np.save(path, np.asarray(rows, np.float32))
    if labels is not None:
        path.with_suffix(".json").write_text(json.dumps({"labels": [int(v) for v in labels]}))
    return str(path)


@pytest.fixture
def files(tmp_path):
    """Gallery/probe embeddings of 6 people, a 10-pair bin with matching embeddings, an index."""
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(PEOPLE, DIM))
    labels = np.repeat(np.arange(PEOPLE), 2)
    gallery = centres[labels] + 0.1 * rng.normal(size=(len(labels), DIM))
    probes = centres[labels] + 0.1 * rng.normal(size=(len(labels), DIM))
    issame = [k % 2 == 0 for k in range(10)]
    first = np.arange(10) % PEOPLE
    second = np.where(issame, first, (first + 1) % PEOPLE)
    pairs = np.empty((20, DIM))
    pairs[0::2] = centres[first] + 0.1 * rng.normal(size=(10, DIM))
    pairs[1::2] = centres[second] + 0.1 * rng.normal(size=(10, DIM))
    image = encode_image(np.zeros((8, 8, 3), np.uint8))
    with open(tmp_path / "b.bin", "wb") as f:
        pickle.dump(([image] * 20, issame), f, protocol=4)
    paths = {
        "gallery": save(tmp_path / "g.npy", gallery, labels),
        "probes": save(tmp_path / "p.npy", probes, labels),
        "pairs": save(tmp_path / "pairs.npy", pairs),
        "bin": str(tmp_path / "b.bin"),
        "index": str(tmp_path / "g.index"),
        "dir": tmp_path,
    }
    assert main(["index", "build", "--embeddings", paths["gallery"], "--out", paths["index"]]) == 0
    return paths


def command_line(command: str, f: dict, bad: str) -> list[str]:
    """The argv of ``command`` reading the embeddings file ``bad`` (other inputs good)."""
    out = str(f["dir"] / "out")
    return {
        "verify": ["verify", "--embeddings", bad, "--bin", f["bin"], "--out", out],
        "index build": ["index", "build", "--embeddings", bad, "--out", out],
        "index add": ["index", "add", "--index", f["index"], "--embeddings", bad],
        "identify gallery": ["identify", "--gallery", bad, "--probes", f["probes"], "--out", out],
        "identify probes": ["identify", "--gallery", f["gallery"], "--probes", bad, "--out", out],
        "search": ["search", "--index", f["index"], "--embeddings", bad, "--threshold", "0.3",
                   "--out", out + ".json"],
    }[command]  # fmt: skip


COMMANDS = ("verify", "index build", "index add", "identify gallery", "identify probes", "search")


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize(
    ("value", "message"), [(np.nan, "row 5 is not finite"), (0.0, "row 5 is all zeros")]
)
def test_every_consumer_applies_the_same_rule(files, one_line_error, command, value, message):
    rows = np.load(files["pairs"] if command == "verify" else files["gallery"])
    rows[5] = value
    bad = save(files["dir"] / "bad.npy", rows, range(len(rows)))
    index = files["dir"] / "g.index"
    before = index.read_bytes()
    one_line_error(command_line(command, files, bad), f"{bad}: embedding {message}")
    assert index.read_bytes() == before  # index add changed nothing
    assert not (files["dir"] / "out").exists() and not (files["dir"] / "out.json").exists()


def test_huge_magnitudes_give_the_same_answers(files, capsys):
    """Rows scaled to 1e38 (float32 norms overflow) score exactly like the unscaled rows."""
    d = files["dir"]
    for name in ("gallery", "probes", "pairs"):
        rows = np.load(files[name]).astype(np.float64)
        rows *= 1e38 / np.abs(rows).max()
        labels = None if name == "pairs" else np.repeat(np.arange(PEOPLE), 2)
        save(d / f"huge_{name}.npy", rows, labels)
    for prefix in ("", "huge_"):
        pairs = str(d / f"{prefix}pairs.npy") if prefix else files["pairs"]
        gallery = str(d / f"{prefix}gallery.npy") if prefix else files["gallery"]
        probes = str(d / f"{prefix}probes.npy") if prefix else files["probes"]
        assert (
            main(
                [
                    "verify",
                    "--embeddings",
                    pairs,
                    "--bin",
                    files["bin"],
                    "--out",
                    str(d / f"{prefix}v"),
                ]
            )
            == 0
        )
        assert (
            main(["index", "build", "--embeddings", gallery, "--out", str(d / f"{prefix}x.index")])
            == 0
        )
        assert (
            main(
                [
                    "search",
                    "--index",
                    str(d / f"{prefix}x.index"),
                    "--embeddings",
                    probes,
                    "--threshold",
                    "0.3",
                    "--out",
                    str(d / f"{prefix}s.json"),
                ]
            )
            == 0
        )
        assert (
            main(
                [
                    "identify",
                    "--gallery",
                    gallery,
                    "--probes",
                    probes,
                    "--out",
                    str(d / f"{prefix}i"),
                ]
            )
            == 0
        )
    capsys.readouterr()
    plain, huge = (json.loads((d / f"{p}v" / "b.json").read_text()) for p in ("", "huge_"))
    assert huge["accuracy_10fold_mean"] == plain["accuracy_10fold_mean"] > 0.5
    assert huge["global_accuracy"] == plain["global_accuracy"]
    plain, huge = (json.loads((d / f"{p}s.json").read_text()) for p in ("", "huge_"))
    assert [r["decision"] for r in huge["results"]] == [r["decision"] for r in plain["results"]]
    # not the same computation: the scaled rows are rounded to float32 (eps/2 each) before
    # they are normalized (eps/2 more), so each unit row is within 2 eps of the plain one per
    # component: 4 eps on a cosine of unit rows; and each float32 inner product of DIM terms
    # is within DIM * eps of its exact value
    eps = float(np.finfo(np.float32).eps)
    for a, b in zip(huge["results"], plain["results"], strict=True):
        np.testing.assert_allclose(
            [t["cosine"] for t in a["top"]],
            [t["cosine"] for t in b["top"]],
            rtol=0,
            atol=(2 * DIM + 4) * eps,
        )
    plain, huge = (
        json.loads((d / f"{p}i" / "identification.json").read_text()) for p in ("", "huge_")
    )
    assert huge["cmc"] == plain["cmc"] and plain["cmc"]["1"] > 0.5  # fmt: skip
