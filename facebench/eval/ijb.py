"""IJB-B / IJB-C template protocols: 1:1 verification (TAR@FAR) and 1:N search (NIST TPIR@FPIR).

Layout (InsightFace's IJB release): ROOT/meta/<ds>_face_tid_mid.txt ("image template media"),
<ds>_template_pair_label.txt ("tid1 tid2 label"), <ds>_name_5pts_score.txt ("image x1 y1 ... x5
y5 faceness", same order), 1:N lists <ds>_1N_gallery_G1.csv / _G2.csv (IJB-B: _S1 / _S2) and
<ds>_1N_probe_mixed.csv (header row; col 0 template, col 1 subject); ROOT/loose_crop/<image>.
Image feature = emb(img) + emb(flip), not normalized, times faceness; template = mean within
each media, sum over media, L2-normalized; score = dot product.
"""

from __future__ import annotations

import itertools
import logging
import os
from dataclasses import dataclass

import numpy as np

from facebench import schema
from facebench.embed.sources import ImageSource
from facebench.errors import DataError, EvalError
from facebench.eval.verification import TARGET_FARS, check_labels, threshold_report

log = logging.getLogger(__name__)

GALLERIES = {"ijbc": ("G1", "G2"), "ijbb": ("S1", "S2")}
#: Lines of a meta file parsed at once, and bytes of gathered template features per side when
#: scoring pairs: bound the memory beyond the pair table and the scores (IJB-C: 15.7M pairs).
CHUNK_LINES = 1 << 20
CHUNK_BYTES = 1 << 27


@dataclass
class IJBMeta:
    """The per-image table and the 1:1 template pairs of one IJB set."""

    images: list[str]
    templates: np.ndarray  # (N,) template id per image
    medias: np.ndarray  # (N,) media id per image
    landmarks: np.ndarray  # (N, 5, 2)
    faceness: np.ndarray  # (N,)
    pairs: np.ndarray  # (P, 2) template ids
    labels: np.ndarray  # (P,) bool


def _check_width(path: str, fields: list[list[str]], width: int, first: int) -> None:
    for number, row in enumerate(fields, first):
        if len(row) != width:
            raise DataError(f"{path}: line {number} has {len(row)} fields, expected {width}")


def _rows(path: str, width: int) -> list[list[str]]:
    """Whitespace-split lines of ``path``, each with ``width`` fields."""
    try:
        with open(path) as f:
            lines = [line.split() for line in f if line.strip()]
    except OSError as exc:
        raise DataError(f"{path}: cannot read IJB meta file ({exc.strerror})") from exc
    _check_width(path, lines, width, 1)
    return lines


def _numbers(path: str, rows: list[list[str]], dtype) -> np.ndarray:
    try:
        return np.array(rows, dtype=dtype)
    except ValueError as exc:
        raise DataError(f"{path}: a field is not a number ({exc})") from exc


def _number_table(path: str, width: int, dtype) -> np.ndarray:
    """:func:`_rows` parsed as numbers ``(lines, width)``, read ``CHUNK_LINES`` lines at a time
    (a list of strings per line would take gigabytes at IJB-C's 15.7M pairs)."""
    blocks, first = [], 1
    try:
        with open(path) as f:
            while lines := [line.split() for line in itertools.islice(f, CHUNK_LINES)]:
                lines = [row for row in lines if row]
                _check_width(path, lines, width, first)
                blocks.append(_numbers(path, lines, dtype).reshape(-1, width))
                first += len(lines)
    except OSError as exc:
        raise DataError(f"{path}: cannot read IJB meta file ({exc.strerror})") from exc
    return np.concatenate(blocks) if blocks else np.zeros((0, width), dtype)


def read_ijb_meta(root: str, dataset: str = "ijbc") -> IJBMeta:
    """Read the 1:1 meta files of ``root`` (see module docstring)."""
    meta = os.path.join(root, "meta")
    tid_path = os.path.join(meta, f"{dataset}_face_tid_mid.txt")
    lmk_path = os.path.join(meta, f"{dataset}_name_5pts_score.txt")
    pair_path = os.path.join(meta, f"{dataset}_template_pair_label.txt")
    tid = _rows(tid_path, 3)
    lmk = _rows(lmk_path, 12)
    if len(tid) != len(lmk):
        raise DataError(f"{lmk_path}: {len(lmk)} lines, but {tid_path} has {len(tid)}")
    for number, (a, b) in enumerate(zip(tid, lmk, strict=True), 1):
        if a[0] != b[0]:
            raise DataError(f"{lmk_path}: line {number} names {b[0]}, {tid_path} names {a[0]}")
    ids = _numbers(tid_path, [r[1:] for r in tid], np.int64)
    points = _numbers(lmk_path, [r[1:] for r in lmk], np.float64)
    pairs = _number_table(pair_path, 3, np.int64)
    if not np.isin(pairs[:, 2], (0, 1)).all():
        raise DataError(f"{pair_path}: labels must be 0 or 1")
    return IJBMeta(
        images=[r[0] for r in tid],
        templates=ids[:, 0],
        medias=ids[:, 1],
        landmarks=points[:, :10].reshape(-1, 5, 2),
        faceness=points[:, 10],
        pairs=pairs[:, :2],
        labels=pairs[:, 2].astype(bool),
    )


def read_1n_list(path: str) -> tuple[np.ndarray, np.ndarray]:
    """(unique template ids, their subject ids) of a 1:N csv (header row, template, subject)."""
    try:
        with open(path) as f:
            rows = [line.strip().split(",") for line in f.readlines()[1:] if line.strip()]
    except OSError as exc:
        raise DataError(f"{path}: cannot read 1:N list ({exc.strerror})") from exc
    table = _numbers(path, [r[:2] for r in rows], np.int64)
    if table.size == 0:
        raise DataError(f"{path}: no templates")
    templates, first = np.unique(table[:, 0], return_index=True)
    if len(np.unique(table, axis=0)) != len(templates):
        raise DataError(f"{path}: a template is listed with two subjects")
    return templates, table[first, 1]


class _AlignedCrops(ImageSource):
    """Loose crops read and aligned on the fly (5-point similarity onto the template)."""

    kind = "ijb"

    def __init__(self, root: str, meta: IJBMeta, size: int):
        super().__init__(root)
        self.root, self.meta, self.size = root, meta, size

    def count(self) -> int:
        return len(self.meta.images)

    def _items(self, rows):
        from facebench.data.align import align_face
        from facebench.data.images import read_image

        for i in rows:
            path = os.path.join(self.root, "loose_crop", self.meta.images[i])
            yield path, align_face(read_image(path), self.meta.landmarks[i], self.size)


def image_features(
    root: str, meta: IJBMeta, embedder, batch_size: int = 64, progress=True, sharding=None
):
    """emb(aligned) + emb(flipped), not normalized, times faceness: ``(N, d)`` (with
    ``sharding``: embedded by every rank, on rank 0; None on the others)."""
    from facebench.embed.distributed import embed_rows

    height, width = embedder.convention.size
    if height != width:
        raise EvalError(f"IJB alignment needs a square model input, got {height}x{width}")
    crops = _AlignedCrops(root, meta, height)
    feats = embed_rows(
        embedder, crops, sharding, batch_size=batch_size, normalize=False, progress=progress
    )
    return None if feats is None else feats.astype(np.float64) * meta.faceness[:, None]


def template_features(
    feats: np.ndarray, templates: np.ndarray, medias: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(template ids, unit features): mean within each media, sum over media, L2-normalize."""
    pairs, media_of = np.unique(np.stack([templates, medias], 1), axis=0, return_inverse=True)
    media_of = media_of.ravel()
    media_sum = np.zeros((len(pairs), feats.shape[1]))
    np.add.at(media_sum, media_of, feats)
    media_mean = media_sum / np.bincount(media_of, minlength=len(pairs))[:, None]
    ids, template_of = np.unique(pairs[:, 0], return_inverse=True)
    out = np.zeros((len(ids), feats.shape[1]))
    np.add.at(out, template_of.ravel(), media_mean)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return ids, out / np.maximum(norms, 1e-12)


def _rows_of(ids: np.ndarray, wanted: np.ndarray, what: str) -> np.ndarray:
    rows = np.searchsorted(ids, wanted)
    rows = np.minimum(rows, len(ids) - 1)
    missing = wanted[ids[rows] != wanted]
    if missing.size:
        raise DataError(f"{what}: template {missing[0]} has no images in face_tid_mid")
    return rows


def tar_at_nearest_far(scores: np.ndarray, labels: np.ndarray, fars=TARGET_FARS) -> dict:
    """IJB convention: TAR at the ROC point (sklearn ``roc_curve``) whose FPR is nearest each
    target, the highest TAR among equally near points (as InsightFace's IJB scripts, which
    reverse the ROC arrays before their argmin); reported only where the impostor count allows
    the target (n * FAR >= 1). Returns ``{key: {"tar", "far", "threshold"}}``: the point's TPR,
    its FPR and a cosine threshold that reproduces it ("same" iff score > threshold)."""
    from sklearn.metrics import roc_curve

    fpr, tpr, thresholds = roc_curve(labels, scores)
    values = np.unique(scores)
    n_imp = int((~labels).sum())
    out = {}
    for far in fars:
        if far * n_imp >= 1 - 1e-9:
            gap = np.abs(fpr - far)
            j = np.flatnonzero(gap == gap.min())[-1]
            out[schema.rate_key(far)] = {
                "tar": float(tpr[j]),
                "far": float(fpr[j]),
                "threshold": _strictly_below(values, thresholds[j]),
            }
    return out


def pair_scores(ids: np.ndarray, feats: np.ndarray, pairs: np.ndarray, source: str) -> np.ndarray:
    """Dot product of the unit template features of each pair ``(P, 2)``, gathered
    ``CHUNK_BYTES`` per side at a time: memory beyond the ``(P,)`` scores does not grow with P."""
    scores = np.empty(len(pairs), dtype=np.float64)
    step = max(1, CHUNK_BYTES // (feats.itemsize * feats.shape[1]))
    for start in range(0, len(pairs), step):
        chunk = pairs[start : start + step]
        a = feats[_rows_of(ids, chunk[:, 0], source)]
        b = feats[_rows_of(ids, chunk[:, 1], source)]
        scores[start : start + len(chunk)] = np.einsum("ij,ij->i", a, b)
    return scores


def _strictly_below(values: np.ndarray, at_least: float) -> float:
    """A tau with ``score > tau`` iff ``score >= at_least`` for the sorted distinct ``values``:
    the midpoint to the next lower score (1 below the lowest; the top score for sklearn's inf)."""
    if not np.isfinite(at_least):
        return float(values[-1])
    i = int(np.searchsorted(values, at_least))
    lower = values[i - 1] if i > 0 else at_least - 2.0
    tau = (lower + at_least) / 2.0
    return float(tau if lower <= tau < at_least else lower)


def verify_1to1(ids: np.ndarray, feats: np.ndarray, meta: IJBMeta, source: str) -> dict:
    """1:1 template report: the pair-report fields of :mod:`facebench.schema` (``tar_at_far``
    with FAR <= target, its thresholds and FARs) plus the IJB convention's nearest-FPR figures
    (``tar_at_nearest_far`` with their thresholds and FPRs)."""
    cos = pair_scores(ids, feats, meta.pairs, source)
    report = threshold_report(cos, check_labels(meta.labels, source))
    nearest = tar_at_nearest_far(cos, meta.labels)
    report[schema.TAR_AT_NEAREST_FAR] = {k: v["tar"] for k, v in nearest.items()}
    report[schema.TAR_AT_NEAREST_FAR_THRESHOLD] = {k: v["threshold"] for k, v in nearest.items()}
    report[schema.TAR_AT_NEAREST_FAR_FAR] = {k: v["far"] for k, v in nearest.items()}
    return report


def search_1n(root: str, dataset: str, ids: np.ndarray, feats: np.ndarray) -> dict:
    """NIST 1:N with each gallery (G1, G2) searched by the mixed probes: CMC and TPIR@FPIR."""
    from facebench.eval.identification import identification_metrics

    meta = os.path.join(root, "meta")
    probe_path = os.path.join(meta, f"{dataset}_1N_probe_mixed.csv")
    probe_t, probe_s = read_1n_list(probe_path)
    probes = feats[_rows_of(ids, probe_t, probe_path)]
    out = {}
    for name in GALLERIES[dataset]:
        path = os.path.join(meta, f"{dataset}_1N_gallery_{name}.csv")
        gal_t, gal_s = read_1n_list(path)
        gallery = feats[_rows_of(ids, gal_t, path)]
        out[name] = identification_metrics(gallery, gal_s, probes, probe_s, fpirs=(1e-2, 1e-1))
    return out


def evaluate_ijb(
    root: str,
    embedder,
    dataset: str = "ijbc",
    batch_size: int = 64,
    one_to_n: bool | None = None,
    progress: bool = True,
    sharding=None,
) -> dict | None:
    """The IJB report: 1:1 always; 1:N when its csv files are present (or ``one_to_n``). With
    ``sharding`` the ranks share the embedding and rank 0 reports; the others return None."""
    if dataset not in GALLERIES:
        raise EvalError(f"IJB dataset must be one of {sorted(GALLERIES)}, got {dataset!r}")
    meta = read_ijb_meta(root, dataset)
    feats = image_features(root, meta, embedder, batch_size, progress, sharding)
    if feats is None:
        return None
    ids, tfeats = template_features(feats, meta.templates, meta.medias)
    source = os.path.join(root, "meta", f"{dataset}_template_pair_label.txt")
    report = {"name": dataset, "root": str(root), "images": len(meta.images)}
    report["templates"] = len(ids)
    report.update(verify_1to1(ids, tfeats, meta, source))
    report[schema.KIND] = schema.IJB
    probe = os.path.join(root, "meta", f"{dataset}_1N_probe_mixed.csv")
    if one_to_n or (one_to_n is None and os.path.exists(probe)):
        report["one_to_n"] = search_1n(root, dataset, ids, tfeats)
    return report
