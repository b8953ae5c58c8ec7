"""IJB protocols on a tiny synthetic IJB-layout folder built here."""

import json
import os

import cv2
import numpy as np
import pytest
import torch
from sklearn.metrics import roc_curve

from facebench.cli import main
from facebench.data.align import ARCFACE_TEMPLATE
from facebench.data.images import InputConvention, encode_image
from facebench.errors import DataError
from facebench.eval import ijb
from facebench.models import build_backbone
from facebench.models.artifact import save_model_artifact

SUBJECTS, TEMPLATES_PER_SUBJECT = 6, 3


def face(subject, rng):
    """A 112x112 'aligned face': a subject-coloured 4x4 block pattern plus noise."""
    pattern = np.random.default_rng(100 + subject).integers(0, 256, size=(4, 4, 3))
    big = np.kron(pattern, np.ones((28, 28, 1)))
    return np.clip(big + rng.normal(0, 8, big.shape), 0, 255).astype(np.uint8)


def loose_crop(aligned, rng):
    """Place an aligned face into a larger crop by a random similarity; return crop, landmarks."""
    angle, scale = rng.uniform(-20, 20), rng.uniform(1.1, 1.5)
    matrix = cv2.getRotationMatrix2D((56, 56), angle, scale)
    matrix[:, 2] += rng.uniform(10, 30, size=2)
    crop = cv2.warpAffine(aligned, matrix, (180, 170), borderValue=0)
    points = ARCFACE_TEMPLATE @ matrix[:, :2].T + matrix[:, 2]
    return crop, points


class BlockEmbedder:
    """A stand-in model: 4x4 block means of the centred image (48-d), order-sensitive."""

    convention = InputConvention()
    name = "blocks"

    def embed(self, rgb):
        x = rgb.astype(np.float64).reshape(len(rgb), 4, 28, 4, 28, 3).mean(axis=(2, 4))
        return (x - 127.5).reshape(len(rgb), -1).astype(np.float32)


def write_ijb(root, rng, dataset="ijbc"):
    meta = os.path.join(root, "meta")
    os.makedirs(meta)
    os.makedirs(os.path.join(root, "loose_crop"))
    tid_lines, lmk_lines, template_subject, template_images = [], [], {}, {}
    image, tid = 0, 0
    for subject in range(SUBJECTS):
        for _ in range(TEMPLATES_PER_SUBJECT):
            tid += 1
            template_subject[tid] = subject
            for media in range(int(rng.integers(1, 3))):
                for _ in range(int(rng.integers(1, 3))):
                    image += 1
                    crop, points = loose_crop(face(subject, rng), rng)
                    name = f"{image}.jpg"
                    with open(os.path.join(root, "loose_crop", name), "wb") as f:
                        f.write(encode_image(crop, ".png"))
                    tid_lines.append(f"{name} {tid} {1000 * tid + media}")
                    coords = " ".join(f"{v:.3f}" for v in points.ravel())
                    lmk_lines.append(f"{name} {coords} {rng.uniform(0.6, 1.0):.4f}")
                    template_images.setdefault(tid, []).append(name)
    with open(os.path.join(meta, f"{dataset}_face_tid_mid.txt"), "w") as f:
        f.write("\n".join(tid_lines) + "\n")
    with open(os.path.join(meta, f"{dataset}_name_5pts_score.txt"), "w") as f:
        f.write("\n".join(lmk_lines) + "\n")
    tids = sorted(template_subject)
    with open(os.path.join(meta, f"{dataset}_template_pair_label.txt"), "w") as f:
        for i, a in enumerate(tids):
            for b in tids[i + 1 :]:
                f.write(f"{a} {b} {int(template_subject[a] == template_subject[b])}\n")
    # 1:N: first template of subjects 0-2 -> G1, of 3-5 -> G2, the others are mixed probes
    firsts = {s: 1 + s * TEMPLATES_PER_SUBJECT for s in range(SUBJECTS)}
    names = ijb.GALLERIES[dataset]
    lists = {names[0]: [firsts[s] for s in range(3)], names[1]: [firsts[s] for s in range(3, 6)]}
    lists["probe_mixed"] = [t for t in tids if t not in firsts.values()]
    for key, templates in lists.items():
        name = (
            f"{dataset}_1N_{key}.csv" if key == "probe_mixed" else f"{dataset}_1N_gallery_{key}.csv"
        )
        with open(os.path.join(meta, name), "w") as f:
            f.write("TEMPLATE_ID,SUBJECT_ID,FILENAME\n")
            for t in templates:
                for img in template_images[t]:
                    f.write(f"{t},{template_subject[t]},{img}\n")
    return template_subject


@pytest.fixture(scope="module")
def ijb_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("IJBC"))
    subjects = write_ijb(root, np.random.default_rng(0))
    return root, subjects


def loop_templates(feats, templates, medias):
    """InsightFace's per-template loop: mean per media, sum over media, normalize."""
    ids = np.unique(templates)
    out = []
    for t in ids:
        rows = np.flatnonzero(templates == t)
        media_feats = [feats[rows[medias[rows] == m]].mean(0) for m in np.unique(medias[rows])]
        v = np.sum(media_feats, axis=0)
        out.append(v / np.linalg.norm(v))
    return ids, np.array(out)


def test_template_features_match_loop():
    rng = np.random.default_rng(1)
    templates = rng.integers(0, 7, 60)
    medias = rng.integers(0, 3, 60) + 10 * templates
    feats = rng.normal(size=(60, 5))
    ids, got = ijb.template_features(feats, templates, medias)
    ref_ids, ref = loop_templates(feats, templates, medias)
    assert (ids == ref_ids).all()
    np.testing.assert_allclose(got, ref, atol=1e-12)


def test_alignment_recovers_the_face(ijb_root):
    root, _ = ijb_root
    meta = ijb.read_ijb_meta(root)
    crops = list(ijb._AlignedCrops(root, meta, 112))
    subject0 = face(0, np.random.default_rng(9)).astype(float)
    assert np.abs(crops[0][8:-8, 8:-8] - subject0[8:-8, 8:-8]).mean() < 20


def test_one_to_one_and_one_to_n(ijb_root):
    root, _ = ijb_root
    report = ijb.evaluate_ijb(root, BlockEmbedder(), progress=False)
    meta = ijb.read_ijb_meta(root)
    feats = ijb.image_features(root, meta, BlockEmbedder(), progress=False)
    ids, tfeats = loop_templates(feats, meta.templates, meta.medias)
    lookup = {t: i for i, t in enumerate(ids)}
    scores = [tfeats[lookup[a]] @ tfeats[lookup[b]] for a, b in meta.pairs]
    fpr, tpr, _ = roc_curve(meta.labels, scores)
    n_imp = int((~meta.labels).sum())
    assert report["impostor_pairs"] == n_imp
    for key, tar in report["tar_at_nearest_far"].items():
        assert float(key) * n_imp >= 1
        gap = np.abs(fpr - float(key))
        assert tar == max(t for t, g in zip(tpr, gap, strict=True) if g == gap.min())
        assert tar == 1.0  # perfectly separated: never the TAR 0 of the (0, 0) ROC point
    assert report["auc"] > 0.95  # the block embedder separates subjects
    g1 = report["one_to_n"]["G1"]
    assert g1["mated_probes"] == 6 and g1["non_mated_probes"] == 6
    assert g1["cmc"]["1"] == 1.0
    assert set(report["one_to_n"]) == {"G1", "G2"}


def insightface_tar_at_far(labels, scores, far):
    """InsightFace's IJB rule, restated: reverse the ROC arrays, then the first nearest FPR."""
    fpr, tpr, _ = roc_curve(labels, scores)
    fpr, tpr = fpr[::-1], tpr[::-1]
    return float(tpr[int(np.argmin(np.abs(fpr - far)))])


@pytest.mark.parametrize("separated", [True, False])
def test_nearest_far_agrees_with_insightface_rule(separated):
    rng = np.random.default_rng(3)
    labels = np.repeat([True, False], [300, 3000])
    if separated:
        genuine, impostor = rng.uniform(0.6, 1.0, labels.size), rng.uniform(-1, 0.5, labels.size)
    else:
        genuine, impostor = rng.normal(0.5, 0.2, labels.size), rng.normal(0, 0.2, labels.size)
    scores = np.where(labels, genuine, impostor)
    ours = {k: v["tar"] for k, v in ijb.tar_at_nearest_far(scores, labels).items()}
    assert set(ours) == {"1e-03", "1e-02", "1e-01"}  # 3000 impostors allow FAR >= 1/3000
    for key, tar in ours.items():
        assert tar == insightface_tar_at_far(labels, scores, float(key))
    # both rules give TAR 1 on separated scores, not the TAR 0 of the ROC's (0, 0) point
    assert (set(ours.values()) == {1.0}) == separated


def placed_pairs():
    """Template features whose pair scores are placed so the two FAR conventions must differ.

    178 impostor scores, evenly spaced; 40 genuine: 10 above every impostor, 10 between the
    2nd and 3rd highest impostor, 10 between the 18th and 19th, 10 below all. At FAR 1e-2
    (1.78 impostors) the nearest FPR is 2/178 > 1e-2, at FAR 1e-1 (17.8) it is 18/178 > 1e-1;
    FAR <= target allows 1 and 17 impostors, so it misses one block of 10 genuine at each target.
    Each pair has its own two templates, (1, 0) and (s, sqrt(1 - s^2)): its score is s exactly.
    """
    imp = np.linspace(0.5, -0.5, 178)
    gen = np.concatenate(
        [np.full(10, 0.6), np.full(10, (imp[1] + imp[2]) / 2), np.full(10, (imp[17] + imp[18]) / 2)]
    )
    gen = np.concatenate([gen, np.full(10, -0.6)])
    placed = np.concatenate([gen, imp])
    labels = np.arange(placed.size) < gen.size
    ids = np.arange(1, 2 * placed.size + 1)
    feats = np.zeros((ids.size, 2))
    feats[0::2, 0] = 1.0
    feats[1::2] = np.stack([placed, np.sqrt(1 - placed**2)], 1)
    meta = ijb.IJBMeta(
        [], ids, ids, np.zeros((0, 5, 2)), np.ones(ids.size), ids.reshape(-1, 2), labels
    )
    return ids, feats, meta, placed


def test_the_two_far_conventions_differ_and_each_matches_its_reference():
    ids, feats, meta, placed = placed_pairs()
    report = ijb.verify_1to1(ids, feats, meta, "placed pairs")
    scores = ijb.pair_scores(ids, feats, meta.pairs, "placed pairs")
    assert (scores == placed).all()  # 1 * s + 0 * sqrt(1 - s^2) is s in any rounding
    gen, imp = scores[meta.labels], scores[~meta.labels]
    assert report["tar_at_far"].keys() == report["tar_at_nearest_far"].keys() == {"1e-02", "1e-01"}
    for key, (ours, nearest) in {"1e-02": (0.25, 0.5), "1e-01": (0.5, 0.75)}.items():
        far = float(key)
        # FAR <= target: the best TAR over every threshold whose FAR is at most the target
        at_most = max(np.mean(gen > t) for t in [*imp, scores.max()] if np.mean(imp > t) <= far)
        assert report["tar_at_far"][key] == at_most == ours
        assert report["tar_at_far_far"][key] <= far
        assert report["tar_at_nearest_far"][key] == insightface_tar_at_far(meta.labels, scores, far)
        assert report["tar_at_nearest_far"][key] == nearest
        assert report["tar_at_nearest_far_far"][key] > far  # the nearest FPR lies above the target
        # each figure's threshold reproduces its TAR and FAR on the pairs
        for tar, thr, rate in (
            ("tar_at_far", "tar_at_far_threshold", "tar_at_far_far"),
            ("tar_at_nearest_far", "tar_at_nearest_far_threshold", "tar_at_nearest_far_far"),
        ):
            t = report[thr][key]
            assert np.mean(gen > t) == report[tar][key] and np.mean(imp > t) == report[rate][key]


def test_bad_meta_files(tmp_path):
    root = str(tmp_path / "IJB")
    write_ijb(root, np.random.default_rng(2), dataset="ijbb")
    path = os.path.join(root, "meta", "ijbb_template_pair_label.txt")
    with open(path, "a") as f:
        f.write("1 999 0\n")
    with pytest.raises(DataError, match="template 999 has no images"):
        ijb.evaluate_ijb(root, BlockEmbedder(), dataset="ijbb", progress=False)
    with open(path, "a") as f:
        f.write("1 2\n")
    with pytest.raises(DataError, match=r"line \d+ has 2 fields"):
        ijb.read_ijb_meta(root, "ijbb")


def test_cli_with_a_tiny_model(ijb_root, tmp_path, capsys):
    root, _ = ijb_root
    torch.manual_seed(0)
    kwargs = {"widths": [8, 8, 8], "embedding_size": 16}
    net = build_backbone("tiny_face", **kwargs).eval()
    save_model_artifact(tmp_path / "m.pt", net, "tiny_face", kwargs, InputConvention())
    argv = ["ijb", "--model", str(tmp_path / "m.pt"), "--root", root, "--out", str(tmp_path)]
    assert main(argv) == 0
    assert "ijbc 1:N G1: rank-1" in capsys.readouterr().out
    report = json.loads((tmp_path / "ijbc.json").read_text())
    assert report["kind"] == "ijb" and "1e-01" in report["tar_at_nearest_far"]


def test_chunked_scoring_equals_all_at_once(monkeypatch):
    rng = np.random.default_rng(3)
    ids = np.arange(5, 45)
    feats = rng.normal(size=(40, 8))
    pairs = rng.choice(ids, size=(1001, 2))
    whole = np.einsum("ij,ij->i", feats[pairs[:, 0] - 5], feats[pairs[:, 1] - 5])
    monkeypatch.setattr(ijb, "CHUNK_BYTES", 64 * 8 * 8)
    assert np.array_equal(ijb.pair_scores(ids, feats, pairs, "<pairs>"), whole)
    pairs[700, 1] = 999
    with pytest.raises(DataError, match="template 999 has no images"):
        ijb.pair_scores(ids, feats, pairs, "<pairs>")


def test_pair_table_read_in_chunks(tmp_path, monkeypatch):
    path = tmp_path / "pairs.txt"
    rows = np.random.default_rng(4).integers(0, 10**6, size=(50, 3))
    path.write_text("\n".join(" ".join(map(str, r)) for r in rows) + "\n\n")
    monkeypatch.setattr(ijb, "CHUNK_LINES", 7)
    assert np.array_equal(ijb._number_table(str(path), 3, np.int64), rows)
    with open(path, "a") as f:
        f.write("1 2\n")
    with pytest.raises(DataError, match="line 51 has 2 fields"):
        ijb._number_table(str(path), 3, np.int64)
