"""Identification metrics against brute-force numpy references (full cosine matrix, loops)."""

import json

import numpy as np
import pytest

from facebench.errors import DataError, EvalError
from facebench.eval.identification import distinct_ranks, identification_metrics, rates_at_fpir


def population(seed, n_ids=30, per_id=2, n_mated=60, n_non=120, dim=16, noise=0.9):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_ids + n_non, dim))
    gallery_ids = np.repeat(np.arange(n_ids), per_id)
    gallery = centres[gallery_ids] + noise * rng.normal(size=(len(gallery_ids), dim))
    mated_ids = rng.integers(0, n_ids, n_mated)
    non_ids = n_ids + np.arange(n_non)
    probe_ids = np.concatenate([mated_ids, non_ids])
    probes = centres[probe_ids] + noise * rng.normal(size=(len(probe_ids), dim))
    return gallery, gallery_ids, probes, probe_ids


def unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def reference(gallery, gallery_ids, probes, probe_ids, fpir):
    """Per-identity best cosine for every probe; ranks and DIR by Python loops."""
    sims = unit(probes) @ unit(gallery).T
    enrolled = set(gallery_ids.tolist())
    ranks, hits, non_top = [], [], []
    for i, pid in enumerate(probe_ids.tolist()):
        best = {}
        for j, gid in enumerate(gallery_ids.tolist()):
            best[gid] = max(best.get(gid, -2.0), sims[i, j])
        order = sorted(best, key=lambda g: -best[g])
        if pid in enrolled:
            ranks.append(order.index(pid) + 1)
            hits.append(best[pid] if order[0] == pid else -np.inf)
        else:
            non_top.append(best[order[0]])
    taus = sorted(non_top)
    best_dir = 0.0
    for tau in taus:
        if np.mean(np.array(non_top) > tau) <= fpir:
            best_dir = max(best_dir, np.mean(np.array(hits) > tau))
    return np.array(ranks), best_dir


def test_cmc_and_dir_match_brute_force():
    g, gid, p, pid = population(0)
    got = identification_metrics(g, gid, p, pid)
    ranks, dir_ref = reference(g, gid, p, pid, 1e-1)
    for r in (1, 5, 10):
        assert got["cmc"][str(r)] == pytest.approx(np.mean(ranks <= r))
    assert got["cmc"]["1"] < got["cmc"]["10"]
    assert got["dir_at_fpir"]["1e-01"] == pytest.approx(dir_ref)
    assert set(got["dir_at_fpir"]) == {"1e-02", "1e-01"}  # 120 non-mated: 1e-3 not allowed
    assert got["fpir_actual"]["1e-01"] <= 0.1
    assert got["dir_at_fpir"]["1e-01"] <= got["cmc"]["1"]
    assert got["recall_at_1_vs_exact"] is None


def test_distractors_only_hurt():
    g, gid, p, pid = population(1)
    rng = np.random.default_rng(5)
    distractors = rng.normal(size=(500, 16))
    base = identification_metrics(g, gid, p, pid)
    more = identification_metrics(g, gid, p, pid, distractors=distractors)
    assert more["distractors"] == 500
    for r in ("1", "5", "10"):
        assert more["cmc"][r] <= base["cmc"][r]
    # the reference sees distractors as 500 more identities
    big_ids = np.concatenate([gid, -1 - np.arange(500)])
    ranks, _ = reference(np.concatenate([g, distractors]), big_ids, p, pid, 1e-1)
    assert more["cmc"]["5"] == pytest.approx(np.mean(ranks <= 5))


def test_string_identities_and_approximate_index():
    g, gid, p, pid = population(2, n_ids=40, per_id=5)
    names = np.array([f"id{i}" for i in range(400)])
    exact = identification_metrics(g, names[gid], p, names[pid])
    approx = identification_metrics(
        g, names[gid], p, names[pid], factory="IVF4,Flat", search_params="nprobe=4"
    )
    assert approx["recall_at_1_vs_exact"] == 1.0  # nprobe = nlist: exhaustive
    assert approx["cmc"] == exact["cmc"]
    coarse = identification_metrics(g, names[gid], p, names[pid], factory="IVF4,Flat")
    assert 0.0 < coarse["recall_at_1_vs_exact"] <= 1.0
    hnsw = identification_metrics(g, names[gid], p, names[pid], factory="HNSW16")
    assert hnsw["recall_at_1_vs_exact"] > 0.9 and hnsw["factory"] == "HNSW16"


def test_helpers():
    found = np.array([[3, 3, 5, 7], [1, 2, 2, 4]])
    assert distinct_ranks(found, np.array([5, 9])).tolist() == [2, 0]
    rates = rates_at_fpir([0.9, -np.inf, 0.5], np.linspace(0, 1, 10), (0.1, 0.01))
    assert list(rates) == ["1e-01"]
    assert rates["1e-01"]["threshold"] == pytest.approx(8 / 9)
    assert rates["1e-01"]["tpir"] == pytest.approx(1 / 3)


def test_bad_inputs():
    g, gid, p, pid = population(3)
    with pytest.raises(EvalError, match="embeddings but"):
        identification_metrics(g, gid[:-1], p, pid)
    with pytest.raises(EvalError, match="expected"):
        identification_metrics(g, gid, p[:, :8], pid)
    bad = p.copy()
    bad[0, 0] = np.nan
    with pytest.raises(DataError, match="probes: embedding row 0 is not finite"):
        identification_metrics(g, gid, bad, pid)
    with pytest.raises(EvalError, match="no probe identity"):
        identification_metrics(g, gid, p, pid + 1000)


def test_identify_cli_matches_library(tmp_path, capsys):
    from facebench.cli import main
    from facebench.embed.io import save_embeddings

    g, gid, p, pid = population(4)
    save_embeddings(str(tmp_path / "g.npy"), g, {"identities": gid.tolist()})
    save_embeddings(str(tmp_path / "p.npy"), p, {"identities": pid.tolist()})
    d = np.random.default_rng(1).normal(size=(50, 16))
    np.save(tmp_path / "d.npy", d.astype(np.float32))
    argv = ["identify", "--gallery", str(tmp_path / "g.npy"), "--probes", str(tmp_path / "p.npy")]
    assert main([*argv, "--distractors", str(tmp_path / "d.npy"), "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "rank-1" in out
    assert all(line == line.rstrip() for line in out.splitlines()), out  # no trailing blanks
    got = json.loads((tmp_path / "identification.json").read_text())
    want = identification_metrics(g, gid, p, pid, distractors=d)
    assert got["cmc"] == pytest.approx(want["cmc"])
    assert got["dir_at_fpir"] == pytest.approx(want["dir_at_fpir"], abs=1e-6)
    np.save(tmp_path / "bare.npy", g.astype(np.float32))
    argv = [
        "identify",
        "--gallery",
        str(tmp_path / "bare.npy"),
        "--probes",
        str(tmp_path / "p.npy"),
    ]
    assert main([*argv, "--out", str(tmp_path / "second")]) == 2
    assert "no identities" in capsys.readouterr().err
