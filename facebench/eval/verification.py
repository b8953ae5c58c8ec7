"""Pair verification: the standard 10-fold protocol and one global threshold, exact and fast.

Pair k is embedding rows 2k and 2k+1 (L2-normalized here). The 10-fold protocol works on the
squared L2 distance ``dist`` (0..4, "same" iff ``dist < t``); everything else works on the cosine
``cos`` ("same" iff ``cos > tau``). Every threshold is also reported in cosine (cos = 1 - dist/2).
All sweeps count with sorted arrays and ``searchsorted``: O(N log N), no loop over thresholds.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from facebench import schema
from facebench.embedding_rows import unit_rows
from facebench.errors import EvalError

log = logging.getLogger(__name__)

#: Thresholds of the standard protocol on the squared-distance scale.
ACCURACY_THRESHOLDS = np.arange(0, 4, 0.01)
VAL_THRESHOLDS = np.arange(0, 4, 0.001)
N_FOLDS = 10
VAL_FAR = 1e-3
#: FAR targets of ``tar_at_far``; a target is reported only when n_impostor * FAR >= 1.
TARGET_FARS = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
#: Figure data stored in the report: cosine histogram edges and accuracy-curve thresholds.
HISTOGRAM_EDGES = np.linspace(-1.0, 1.0, 201)
CURVE_THRESHOLDS = np.linspace(-1.0, 1.0, 401)
ROC_POINTS = 200


def dist_to_cosine(dist: float) -> float:
    """Squared L2 distance between unit vectors -> cosine."""
    return 1.0 - dist / 2.0


def check_pairs(embeddings: np.ndarray, issame: np.ndarray, source: str) -> np.ndarray:
    """Validate ``(2P, d)`` embeddings against ``P`` labels; return float64 unit rows."""
    emb = np.asarray(embeddings)
    labels = np.asarray(issame)
    if emb.ndim != 2:
        raise EvalError(f"{source}: embeddings must be 2-D (2P, d), got shape {emb.shape}")
    if emb.shape[0] != 2 * labels.shape[0]:
        raise EvalError(
            f"{source}: {emb.shape[0]} embeddings for {labels.shape[0]} pairs "
            f"(expected {2 * labels.shape[0]}, two per pair in bin order)"
        )
    return unit_rows(emb, source, np.float64)


def check_labels(issame: np.ndarray, source: str) -> np.ndarray:
    """Pair labels as a bool array holding both genuine and impostor pairs."""
    labels = np.asarray(issame).astype(bool).ravel()
    n_gen = int(labels.sum())
    if n_gen == 0 or n_gen == labels.size:
        raise EvalError(
            f"{source}: needs both genuine and impostor pairs, got {n_gen} genuine and "
            f"{labels.size - n_gen} impostor"
        )
    return labels


def pair_scores(unit_embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Squared L2 distance and cosine of each pair (rows 2k, 2k+1) of unit embeddings."""
    a, b = unit_embeddings[0::2], unit_embeddings[1::2]
    dist = np.sum(np.square(a - b), axis=1)
    cos = np.einsum("ij,ij->i", a, b)
    return dist, cos


def fold_bounds(n_pairs: int, n_folds: int = N_FOLDS) -> list[tuple[int, int]]:
    """Contiguous folds as (start, stop), sized like sklearn ``KFold(n_folds)`` without shuffle."""
    sizes = np.full(n_folds, n_pairs // n_folds)
    sizes[: n_pairs % n_folds] += 1
    stops = np.cumsum(sizes)
    return [(int(stop - size), int(stop)) for stop, size in zip(stops, sizes, strict=True)]


def _fold_counts(dist: np.ndarray, issame: np.ndarray, thresholds: np.ndarray, n_folds: int):
    """Per fold: genuine / impostor counts with ``dist < t`` for every t, and fold class sizes."""
    folds = fold_bounds(dist.size, n_folds)
    gen_below = np.empty((n_folds, thresholds.size), dtype=np.int64)
    imp_below = np.empty_like(gen_below)
    n_gen = np.empty(n_folds, dtype=np.int64)
    for f, (start, stop) in enumerate(folds):
        d, same = dist[start:stop], issame[start:stop]
        gen_below[f] = np.searchsorted(np.sort(d[same]), thresholds, side="left")
        imp_below[f] = np.searchsorted(np.sort(d[~same]), thresholds, side="left")
        n_gen[f] = same.sum()
    n_imp = np.array([stop - start for start, stop in folds]) - n_gen
    return folds, gen_below, imp_below, n_gen, n_imp


def _check_folds(n_pairs: int, n_folds: int, source: str) -> None:
    if n_pairs < n_folds:
        raise EvalError(f"{source}: {n_pairs} pairs cannot be split into {n_folds} folds")


def ten_fold_accuracy(
    dist: np.ndarray,
    issame: np.ndarray,
    thresholds: np.ndarray = ACCURACY_THRESHOLDS,
    n_folds: int = N_FOLDS,
    source: str = "<pairs>",
) -> dict:
    """Standard protocol: per fold, the best training-fold threshold (first among ties) scored
    on the held-out fold. Returns fold accuracies, their mean and std (ddof 0), and thresholds."""
    _check_folds(dist.size, n_folds, source)
    _, gen_below, imp_below, n_gen, n_imp = _fold_counts(dist, issame, thresholds, n_folds)
    all_gen, all_imp = gen_below.sum(axis=0), imp_below.sum(axis=0)
    accuracies, best = [], []
    for f in range(n_folds):
        train_tp = all_gen - gen_below[f]
        train_tn = (n_imp.sum() - n_imp[f]) - (all_imp - imp_below[f])
        j = int(np.argmax(train_tp + train_tn))
        correct = gen_below[f, j] + n_imp[f] - imp_below[f, j]
        accuracies.append(float(correct / (n_gen[f] + n_imp[f])))
        best.append(float(thresholds[j]))
    return {
        schema.ACCURACY_10FOLD_MEAN: float(np.mean(accuracies)),
        schema.ACCURACY_10FOLD_STD: float(np.std(accuracies)),
        "accuracy_10fold_folds": accuracies,
        "threshold_10fold_dist": best,
        "threshold_10fold_cosine": [dist_to_cosine(t) for t in best],
    }


def interpolate_threshold(far_curve: np.ndarray, thresholds: np.ndarray, target: float) -> float:
    """Threshold at which a non-decreasing FAR curve reaches ``target``, linear in FAR.

    Repeated FAR values are collapsed to their FIRST (smallest) threshold before interpolating
    over the distinct values; 0.0 when the curve never reaches ``target``."""
    if far_curve.max() < target:
        return 0.0
    distinct, first = np.unique(far_curve, return_index=True)
    return float(np.interp(target, distinct, thresholds[first]))


def val_at_far(
    dist: np.ndarray,
    issame: np.ndarray,
    far_target: float = VAL_FAR,
    thresholds: np.ndarray = VAL_THRESHOLDS,
    n_folds: int = N_FOLDS,
    source: str = "<pairs>",
) -> dict | None:
    """Standard VAL@FAR: per fold, the training-fold threshold for ``far_target``
    (see :func:`interpolate_threshold`) scored on the held-out fold. None when a held-out fold
    lacks genuine or impostor pairs (the rate is then undefined)."""
    _check_folds(dist.size, n_folds, source)
    folds, _, imp_below, n_gen, n_imp = _fold_counts(dist, issame, thresholds, n_folds)
    if (n_gen == 0).any() or (n_imp == 0).any():
        log.warning("%s: a fold lacks genuine or impostor pairs; VAL@FAR is not defined", source)
        return None
    all_imp = imp_below.sum(axis=0)
    vals, fars, chosen = [], [], []
    for f, (start, stop) in enumerate(folds):
        far_train = (all_imp - imp_below[f]) / (n_imp.sum() - n_imp[f])
        t = interpolate_threshold(far_train, thresholds, far_target)
        accept = dist[start:stop] < t
        same = issame[start:stop]
        vals.append(float(np.count_nonzero(accept & same) / n_gen[f]))
        fars.append(float(np.count_nonzero(accept & ~same) / n_imp[f]))
        chosen.append(t)
    key = schema.val_key(far_target)
    return {
        key: float(np.mean(vals)),
        f"{key}_std": float(np.std(vals)),
        f"{key}_far_mean": float(np.mean(fars)),
        f"{key}_threshold_cosine": [dist_to_cosine(t) for t in chosen],
    }


def _split_sorted(cos: np.ndarray, issame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.sort(cos[issame]), np.sort(cos[~issame])


def _correct_at(gen_sorted: np.ndarray, imp_sorted: np.ndarray, taus: np.ndarray) -> np.ndarray:
    """Number of pairs right at each tau: genuine with cos > tau plus impostor with cos <= tau."""
    gen_above = gen_sorted.size - np.searchsorted(gen_sorted, taus, side="right")
    return gen_above + np.searchsorted(imp_sorted, taus, side="right")


def cumulative_counts(cos: np.ndarray, issame: np.ndarray):
    """One sort: the distinct scores ascending and, for each, genuine / impostor counts <= it."""
    order = np.argsort(cos)
    values, same = cos[order], issame[order]
    last = np.flatnonzero(np.append(values[1:] != values[:-1], True))
    return values[last], np.cumsum(same)[last], np.cumsum(~same)[last]


def best_global_threshold(cos: np.ndarray, issame: np.ndarray) -> tuple[float, float]:
    """Oracle single cosine threshold: (tau, accuracy) maximising accuracy exactly.

    Accuracy only changes at score values, so the candidates are "below every score" and each
    distinct score s (covering [s, next score)). The lowest maximising interval wins; tau is its
    midpoint (the midpoint with 1.0 above the top score; halfway to -1 below the lowest)."""
    scores, gen_le, imp_le = cumulative_counts(cos, issame)
    n_gen = int(gen_le[-1])
    correct = n_gen - gen_le + imp_le
    j = int(np.argmax(correct))
    if n_gen >= correct[j]:  # "below every score": all pairs predicted same
        low = scores[0]
        tau = (low - 1.0) / 2.0 if low > -1.0 else low - 1.0
        return float(tau), float(n_gen / cos.size)
    upper = scores[j + 1] if j + 1 < scores.size else max(scores[j], 1.0)
    tau = (scores[j] + upper) / 2.0
    if not scores[j] <= tau < upper:
        tau = scores[j]
    return float(tau), float(correct[j] / cos.size)


def apply_threshold(cos: np.ndarray, issame: np.ndarray, tau: float) -> dict:
    """Accuracy, TAR and FAR of "same iff cos > tau"."""
    same = cos > tau
    return {
        "accuracy": float(np.mean(same == issame)),
        "tar": float(np.mean(same[issame])),
        "far": float(np.mean(same[~issame])),
    }


def rates_at_targets(positive, negative, targets) -> dict[str, tuple[float, float, float]]:
    """For each target rate r that the negative count allows (n_negative * r >= 1): the lowest
    threshold letting at most r of the negatives pass. k = floor(r * n_negative) may pass, so tau
    is the (k+1)-th highest negative score ("accept" iff score > tau). Returns
    ``{rate key: (positive pass rate, negative pass rate, tau)}``."""
    pos = np.asarray(positive, np.float64)
    neg = np.sort(np.asarray(negative, np.float64))
    out = {}
    for rate in targets:
        k = math.floor(rate * neg.size + 1e-9)
        if k < 1:
            continue
        tau = neg[neg.size - 1 - k]
        out[schema.rate_key(rate)] = (
            float(np.count_nonzero(pos > tau) / pos.size),
            float(np.count_nonzero(neg > tau) / neg.size),
            float(tau),
        )
    return out


def tar_at_far(cos: np.ndarray, issame: np.ndarray, fars=TARGET_FARS) -> dict:
    """TAR at each FAR target whose impostor count allows it, at the lowest threshold with
    FAR <= target (:func:`rates_at_targets`). Returns ``{key: {"tar", "far", "threshold"}}``."""
    rates = rates_at_targets(cos[issame], cos[~issame], fars)
    return {k: {"tar": t, "far": f, "threshold": tau} for k, (t, f, tau) in rates.items()}


def roc_points(cos: np.ndarray, issame: np.ndarray, n_points: int = ROC_POINTS) -> dict:
    """ROC vertices at about ``n_points`` log-spaced FARs (for figures with a log FAR axis)."""
    gen, imp = _split_sorted(cos, issame)
    ks = np.unique(np.geomspace(1, imp.size, n_points).astype(np.int64)) - 1
    taus = imp[imp.size - 1 - ks]
    far = (imp.size - np.searchsorted(imp, taus, side="right")) / imp.size
    tar = (gen.size - np.searchsorted(gen, taus, side="right")) / gen.size
    return {"far": far.tolist(), "tar": tar.tolist(), "threshold": taus.tolist()}


def equal_error_rate(cos: np.ndarray, issame: np.ndarray) -> float:
    """EER: where FAR = FRR on the ROC, linear between the two vertices that bracket it."""
    _, gen_le, imp_le = cumulative_counts(cos, issame)
    n_gen, n_imp = gen_le[-1], imp_le[-1]
    far = np.concatenate([[1.0], (n_imp - imp_le) / n_imp])
    frr = np.concatenate([[0.0], gen_le / n_gen])
    gap = frr - far  # -1 below every score, rising to +1 at the top score
    j = int(np.argmax(gap >= 0))
    if gap[j] == 0:
        return float(far[j])
    t = -gap[j - 1] / (gap[j] - gap[j - 1])
    return float(far[j - 1] + t * (far[j] - far[j - 1]))


def roc_auc(cos: np.ndarray, issame: np.ndarray) -> float:
    """Area under the ROC: P(genuine > impostor) + P(tie) / 2, as sklearn's roc_auc_score."""
    _, gen_le, imp_le = cumulative_counts(cos, issame)
    gen_here = np.diff(gen_le, prepend=0)
    imp_here = np.diff(imp_le, prepend=0)
    imp_below = imp_le - imp_here
    wins = np.sum(gen_here * imp_below) + 0.5 * np.sum(gen_here * imp_here)
    return float(wins / (gen_le[-1] * imp_le[-1]))


def figure_data(cos: np.ndarray, issame: np.ndarray) -> dict:
    """What the report figures need: cosine histograms, accuracy vs threshold, ROC points."""
    gen, imp = _split_sorted(cos, issame)
    clipped = np.clip(cos, -1.0, 1.0)
    return {
        "histogram": {
            "edges": HISTOGRAM_EDGES.tolist(),
            "genuine": np.histogram(clipped[issame], HISTOGRAM_EDGES)[0].tolist(),
            "impostor": np.histogram(clipped[~issame], HISTOGRAM_EDGES)[0].tolist(),
        },
        "accuracy_curve": {
            "threshold": CURVE_THRESHOLDS.tolist(),
            "accuracy": (_correct_at(gen, imp, CURVE_THRESHOLDS) / cos.size).tolist(),
        },
        "roc": roc_points(cos, issame),
    }


def threshold_report(cos: np.ndarray, issame: np.ndarray) -> dict:
    """The single-threshold metrics and figure data of pair cosines (labels already checked)."""
    tau, global_acc = best_global_threshold(cos, issame)
    tars = tar_at_far(cos, issame)
    return {
        "pairs": int(issame.size),
        "genuine_pairs": int(issame.sum()),
        schema.IMPOSTOR_PAIRS: int((~issame).sum()),
        schema.GLOBAL_THRESHOLD: tau,
        schema.GLOBAL_ACCURACY: global_acc,
        schema.EER: equal_error_rate(cos, issame),
        schema.AUC: roc_auc(cos, issame),
        schema.TAR_AT_FAR: {k: v["tar"] for k, v in tars.items()},
        schema.TAR_AT_FAR_THRESHOLD: {k: v["threshold"] for k, v in tars.items()},
        schema.TAR_AT_FAR_FAR: {k: v["far"] for k, v in tars.items()},
        **figure_data(cos, issame),
    }


def score_report(dist: np.ndarray, cos: np.ndarray, issame: np.ndarray, source: str) -> dict:
    """Every verification metric from pair distances and cosines (see module docstring)."""
    issame = check_labels(issame, source)
    report = {schema.KIND: schema.VERIFICATION, **ten_fold_accuracy(dist, issame, source=source)}
    report.update(val_at_far(dist, issame, source=source) or {schema.val_key(VAL_FAR): None})
    report.update(threshold_report(cos, issame))
    return report


def evaluate_verification(
    embeddings: np.ndarray, issame: np.ndarray, source: str = "<embeddings>"
) -> dict:
    """Full verification report for ``(2P, d)`` embeddings (flip-summed) and ``P`` labels."""
    unit = check_pairs(embeddings, issame, source)
    dist, cos = pair_scores(unit)
    return score_report(dist, cos, np.asarray(issame), source)


def transfer_table(
    scores: dict[str, tuple[np.ndarray, np.ndarray]], target_far: float = VAL_FAR
) -> dict:
    """Thresholds chosen on each set applied to every set.

    ``scores`` maps a name to (cosines, issame). For each source set, its oracle global threshold
    and its threshold for ``target_far`` are applied to every target set (accuracy, TAR, FAR)."""
    key = schema.rate_key(target_far)
    table = {"target_far": target_far, "sources": {}}
    for src, (cos, issame) in scores.items():
        issame = check_labels(issame, src)
        tau, _ = best_global_threshold(cos, issame)
        at_far = tar_at_far(cos, issame, (target_far,)).get(key)
        far_tau = None if at_far is None else at_far["threshold"]
        entry = {schema.GLOBAL_THRESHOLD: tau, "far_threshold": far_tau, "global": {}, "at_far": {}}
        for dst, (dst_cos, dst_same) in scores.items():
            dst_same = np.asarray(dst_same).astype(bool)
            entry["global"][dst] = apply_threshold(dst_cos, dst_same, tau)
            if far_tau is not None:
                entry["at_far"][dst] = apply_threshold(dst_cos, dst_same, far_tau)
        table["sources"][src] = entry
    return table
