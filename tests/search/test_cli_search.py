"""`facebench index build/add` and `facebench search` end to end, and their one-line errors."""

import csv
import json

import numpy as np
import pytest

from facebench.cli import main
from facebench.embed.io import load_embeddings, save_embeddings
from facebench.search import UNKNOWN, Gallery


def unit_rows(n, d, seed):
    x = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture
def files(tmp_path):
    """Gallery: 3 people x 2 embeddings (names); probes: a noisy copy of each row + 2 strangers."""
    gallery = unit_rows(6, 32, 0)
    save_embeddings(
        str(tmp_path / "g1.npy"), gallery[:4], {"identities": ["ann", "ann", "bob", "bob"]}
    )
    save_embeddings(str(tmp_path / "g2.npy"), gallery[4:], {"identities": ["cy", "cy"]})
    noisy = gallery + 0.05 * unit_rows(6, 32, 1)
    probes = np.vstack([noisy, unit_rows(2, 32, 2)])
    save_embeddings(str(tmp_path / "p.npy"), probes, {"paths": [f"p{i}.jpg" for i in range(8)]})
    (tmp_path / "lfw.json").write_text(
        json.dumps(
            {
                "kind": "verification",
                "global_threshold": 0.6,
                "tar_at_far_threshold": {"1e-03": 0.7},
            }
        )
    )
    return tmp_path


def run(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def expected_decisions(tmp_path, threshold):
    """Reference: every probe against every gallery row by loops."""
    g1, m1 = load_embeddings(str(tmp_path / "g1.npy"))
    g2, m2 = load_embeddings(str(tmp_path / "g2.npy"))
    gallery, names = np.vstack([g1, g2]), m1["identities"] + m2["identities"]
    probes, _ = load_embeddings(str(tmp_path / "p.npy"))
    out = []
    for p in probes:
        scores = [float(np.dot(p, g) / np.linalg.norm(p) / np.linalg.norm(g)) for g in gallery]
        best = max(range(len(scores)), key=lambda i: scores[i])
        out.append(names[best] if scores[best] > threshold else UNKNOWN)
    return out


def test_build_add_search_json_and_csv(files, capsys):
    code, text, _ = run(
        ["index", "build", "--embeddings", str(files / "g1.npy"), "--out", str(files / "g.index")],
        capsys,
    )
    assert code == 0 and "4 x 32 (Flat), 2 identities" in text
    code, text, _ = run(
        ["index", "add", "--index", str(files / "g.index"), "--embeddings", str(files / "g2.npy")],
        capsys,
    )
    assert code == 0 and "6 x 32 (Flat), 3 identities" in text
    assert len(Gallery.load(str(files / "g.index"))) == 6

    code, text, _ = run(
        [
            "search",
            "--index",
            str(files / "g.index"),
            "--embeddings",
            str(files / "p.npy"),
            "--threshold-from",
            str(files / "lfw.json"),
            "--top-k",
            "3",
            "--out",
            str(files / "r.json"),
        ],
        capsys,
    )
    report = json.loads((files / "r.json").read_text())
    assert code == 0 and report["threshold"] == 0.6
    assert [r["decision"] for r in report["results"]] == expected_decisions(files, 0.6)
    assert report["results"][0]["decision"] == "ann" and report["results"][7]["decision"] == UNKNOWN
    assert report["results"][0]["probe"] == "p0.jpg" and len(report["results"][0]["top"]) == 3
    assert report["unknown"] == 2 and "6 identified, 2 unknown" in text

    code, _, _ = run(
        [
            "search",
            "--index",
            str(files / "g.index"),
            "--embeddings",
            str(files / "p.npy"),
            "--threshold-from",
            str(files / "lfw.json"),
            "--far",
            "1e-3",
            "--out",
            str(files / "r.csv"),
        ],
        capsys,
    )
    rows = list(csv.reader((files / "r.csv").open()))
    assert code == 0 and rows[0][:4] == ["probe", "decision", "identity_1", "cosine_1"]
    assert [r[1] for r in rows[1:]] == expected_decisions(files, 0.7)

    code, _, _ = run(
        [
            "search",
            "--index",
            str(files / "g.index"),
            "--embeddings",
            str(files / "p.npy"),
            "--threshold",
            "-1",
            "--top-k",
            "1",
            "--out",
            str(files / "all.json"),
        ],
        capsys,
    )
    report = json.loads((files / "all.json").read_text())
    assert report["unknown"] == 0


def test_ivf_factory_through_the_cli(tmp_path, capsys):
    emb = unit_rows(300, 16, 3)
    save_embeddings(str(tmp_path / "g.npy"), emb, {"labels": list(range(300))})
    code, text, _ = run(
        [
            "index",
            "build",
            "--embeddings",
            str(tmp_path / "g.npy"),
            "--out",
            str(tmp_path / "g.index"),
            "--factory",
            "IVF4,Flat",
        ],
        capsys,
    )
    assert code == 0 and "(IVF4,Flat)" in text
    code, _, _ = run(
        [
            "search",
            "--index",
            str(tmp_path / "g.index"),
            "--embeddings",
            str(tmp_path / "g.npy"),
            "--threshold",
            "0.99",
            "--search-params",
            "nprobe=4",
            "--out",
            str(tmp_path / "r.json"),
        ],
        capsys,
    )
    report = json.loads((tmp_path / "r.json").read_text())
    assert [r["decision"] for r in report["results"]] == list(range(300))


def error_line(argv, capsys):
    code, _, err = run(argv, capsys)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("facebench: error: "), err
    return lines[0]


def test_bad_inputs_give_one_line_errors(files, capsys):
    run(
        ["index", "build", "--embeddings", str(files / "g1.npy"), "--out", str(files / "g.index")],
        capsys,
    )
    save_embeddings(str(files / "wide.npy"), unit_rows(2, 64, 5), {})
    line = error_line(
        [
            "search",
            "--index",
            str(files / "g.index"),
            "--embeddings",
            str(files / "wide.npy"),
            "--threshold",
            "0.3",
            "--out",
            str(files / "r.json"),
        ],
        capsys,
    )
    assert "wide.npy: 64-d embeddings, the gallery" in line and "holds 32-d" in line
    add = ["index", "add", "--index", str(files / "g.index"), "--embeddings"]
    line = error_line([*add, str(files / "wide.npy")], capsys)
    assert "wide.npy: 64-d embeddings" in line
    save_embeddings(str(files / "nolabels.npy"), unit_rows(2, 32, 5), {})
    line = error_line([*add, str(files / "nolabels.npy")], capsys)
    assert "nolabels.npy: no identities" in line

    data = (files / "g.index").read_bytes()
    (files / "cut.index").write_bytes(data[:-40])
    line = error_line(
        [
            "search",
            "--index",
            str(files / "cut.index"),
            "--embeddings",
            str(files / "p.npy"),
            "--threshold",
            "0.3",
            "--out",
            str(files / "r.json"),
        ],
        capsys,
    )
    assert "cut.index: corrupt gallery index" in line
    line = error_line(
        [
            "search",
            "--index",
            str(files / "g.index"),
            "--embeddings",
            str(files / "p.npy"),
            "--threshold-from",
            str(files / "g1.json"),
            "--out",
            str(files / "r.json"),
        ],
        capsys,
    )
    assert "g1.json: a non-facebench report holds no decision threshold" in line
    assert not (files / "r.json").exists()


def test_search_ranks_distinct_identities_by_their_best_image(tmp_path, capsys):
    """Identity 0 holds the 3 rows nearest the probe: per image it fills ranks 1-3, per identity
    it takes rank 1 once and the next identities follow, each with its best cosine."""
    rng = np.random.default_rng(7)
    probe = unit_rows(1, 16, 8)
    near = probe + 0.1 * unit_rows(3, 16, 9)
    others = unit_rows(12, 16, 10) + 0.3 * probe  # 4 identities x 3 images, farther away
    gallery = np.vstack([near, others])
    ids = [0, 0, 0] + [1 + i // 3 for i in range(12)]
    order = rng.permutation(len(ids))  # gallery rows in no particular order
    save_embeddings(
        str(tmp_path / "g.npy"), gallery[order], {"identities": [ids[i] for i in order]}
    )
    save_embeddings(str(tmp_path / "p.npy"), probe, {"paths": ["p.jpg"]})
    assert (
        main(
            [
                "index",
                "build",
                "--embeddings",
                str(tmp_path / "g.npy"),
                "--out",
                str(tmp_path / "g.index"),
            ]
        )
        == 0
    )

    def top(*extra):
        out = tmp_path / f"r{len(extra)}.json"
        argv = [
            "search",
            "--index",
            str(tmp_path / "g.index"),
            "--embeddings",
            str(tmp_path / "p.npy"),
        ]
        assert main([*argv, "--threshold", "0.5", "--top-k", "3", "--out", str(out), *extra]) == 0
        report = json.loads(out.read_text())
        return report, [(h["identity"], h["cosine"]) for h in report["results"][0]["top"]]

    report, by_identity = top()
    unit = gallery / np.linalg.norm(gallery, axis=1, keepdims=True)
    cos = (unit @ probe[0].astype(np.float64)) / np.linalg.norm(probe[0])
    best = {i: max(c for c, j in zip(cos, ids, strict=True) if j == i) for i in set(ids)}
    expected = sorted(best.items(), key=lambda kv: -kv[1])[:3]
    assert [i for i, _ in by_identity] == [i for i, _ in expected] and by_identity[0][0] == 0
    # float32 inner products of unit rows against float64: the d = 16 products' |terms| add up to
    # at most 1, rounding by at most 15 * 2**-24, the rows' own rounding 2 * 2**-24: under d * eps
    got, want = [c for _, c in by_identity], [c for _, c in expected]
    np.testing.assert_allclose(got, want, rtol=0, atol=16 * np.finfo(np.float32).eps)
    assert report["ranking"] == "identity" and report["results"][0]["decision"] == 0

    report, per_image = top("--per-image")
    assert [i for i, _ in per_image] == [0, 0, 0] and report["ranking"] == "image"
    capsys.readouterr()
