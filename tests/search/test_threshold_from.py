"""`--threshold-from`: for every report kind, the threshold read gives back the rates beside it."""

import numpy as np
import pytest

from facebench import schema
from facebench.embed.io import save_embeddings
from facebench.errors import DataError
from facebench.eval import ijb
from facebench.eval.identification import identification_metrics
from facebench.eval.verification import apply_threshold, score_report
from facebench.fileio import write_json
from facebench.search import Gallery
from facebench.search.gallery import UNKNOWN
from facebench.search.service import search_probes, threshold_from_report


def overlapping_pairs(n_pairs=4000, seed=0):
    """Pair cosines whose genuine and impostor scores overlap (so every rate is below 1)."""
    rng = np.random.default_rng(seed)
    issame = rng.random(n_pairs) < 0.5
    cos = np.where(issame, rng.normal(0.4, 0.2, n_pairs), rng.normal(0.0, 0.2, n_pairs))
    return np.clip(cos, -1, 1), issame


def verification_report(cos, issame):
    return score_report(2.0 - 2.0 * cos, cos, issame, "pairs")


def ijb_report(cos, issame):
    """verify_1to1 on template features whose pair cosines are ``cos`` (two templates a pair)."""
    n = cos.size
    angle = np.arccos(cos)
    feats = np.zeros((2 * n, 2))
    feats[0::2, 0] = 1.0
    feats[1::2] = np.stack([np.cos(angle), np.sin(angle)], axis=1)
    ids = np.arange(2 * n)
    meta = ijb.IJBMeta(
        images=[],
        templates=ids,
        medias=ids,
        landmarks=np.zeros((0, 5, 2)),
        faceness=np.zeros(0),
        pairs=ids.reshape(n, 2),
        labels=issame,
    )
    report = ijb.verify_1to1(ids, feats, meta, "pairs")
    report[schema.KIND] = schema.IJB
    scores = np.einsum("ij,ij->i", feats[0::2], feats[1::2])  # the report's own cosines
    return report, scores


@pytest.mark.parametrize("kind", [schema.VERIFICATION, schema.IJB])
def test_pair_report_thresholds_give_back_their_rates(tmp_path, kind):
    cos, issame = overlapping_pairs()
    if kind == schema.IJB:
        report, cos = ijb_report(cos, issame)
        nearest = report[schema.TAR_AT_NEAREST_FAR]
        assert any(nearest[k] != report[schema.TAR_AT_FAR][k] for k in nearest)
    else:
        report = verification_report(cos, issame)
    path = write_json(tmp_path / f"{kind}.json", report)
    tau = threshold_from_report(path)
    assert apply_threshold(cos, issame, tau)["accuracy"] == report[schema.GLOBAL_ACCURACY]
    assert set(report[schema.TAR_AT_FAR]) == {"1e-03", "1e-02", "1e-01"}
    for key, tar in report[schema.TAR_AT_FAR].items():
        got = apply_threshold(cos, issame, threshold_from_report(path, float(key)))
        assert (got["tar"], got["far"]) == (tar, report[schema.TAR_AT_FAR_FAR][key])
        assert got["far"] <= float(key)


def test_identification_threshold_gives_back_dir_and_fpir_in_a_search(tmp_path):
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(230, 16))
    gallery_ids = np.repeat(np.arange(30), 2)
    gallery = centres[gallery_ids] + 0.9 * rng.normal(size=(60, 16))
    probe_ids = np.concatenate([rng.integers(0, 30, 100), 30 + np.arange(200)])
    probes = centres[probe_ids] + 0.9 * rng.normal(size=(300, 16))
    report = identification_metrics(gallery, gallery_ids, probes, probe_ids)
    path = write_json(tmp_path / "identification.json", report)
    index = Gallery(16)
    index.add(gallery, gallery_ids)
    index.save(str(tmp_path / "g.index"))
    save_embeddings(str(tmp_path / "p.npy"), probes, {})
    mated = np.isin(probe_ids, gallery_ids)
    assert set(report[schema.DIR_AT_FPIR]) == {"1e-02", "1e-01"}
    for key, rate in report[schema.DIR_AT_FPIR].items():
        tau = threshold_from_report(path, float(key))
        found = search_probes(str(tmp_path / "g.index"), str(tmp_path / "p.npy"), tau, top_k=1)
        decisions = np.array([r["decision"] for r in found["results"]], dtype=object)
        assert np.mean(decisions[mated] == probe_ids[mated]) == rate
        assert np.mean(decisions[~mated] != UNKNOWN) == report[schema.FPIR_ACTUAL][key]
    with pytest.raises(DataError, match="thresholds per FPIR only; pass --far"):
        threshold_from_report(path)
    with pytest.raises(DataError, match=r"no dir_threshold\[1e-03\] \(targets in this report: "):
        threshold_from_report(path, 1e-3)


@pytest.mark.parametrize("kind", [schema.TRANSFER, schema.UNIFORM, schema.SEARCH])
def test_reports_without_a_threshold_are_refused(tmp_path, kind):
    path = write_json(tmp_path / "r.json", {schema.KIND: kind, "global_threshold": 0.5})
    with pytest.raises(DataError, match=f"a {kind} report holds no decision threshold"):
        threshold_from_report(path)
