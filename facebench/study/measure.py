"""What the study measures on a trained run, through the package's own evaluation functions."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facebench import schema
from facebench.schema import rate_key

#: FAR targets of the open-set table; a bin reports TAR at a target only where it holds
#: 10 / FAR impostor pairs (:func:`supported_fars`): 1e-3 needs 10,000.
OPEN_SET_FARS = (1e-2, 1e-3)
#: The pair bootstrap of an open-set run: resamples of its bin's pairs, drawn with the seed
#: BOOTSTRAP_SEED + partition, so every run on a partition gets the same resamples and two
#: heads' values pair up resample by resample.
BOOTSTRAP_RESAMPLES = 200
BOOTSTRAP_SEED = 3000
OPEN_BOOTSTRAP = "verification_bootstrap"


def supported_fars(
    impostor_pairs: int, fars: tuple[float, ...] = OPEN_SET_FARS
) -> tuple[float, ...]:
    """The ``fars`` a bin of ``impostor_pairs`` reports TAR at: the package's one rule,
    :func:`facebench.report.render.headline_rates` (>= 10 impostor pairs past the threshold)."""
    from facebench.report.render import headline_rates

    kept = headline_rates({rate_key(far): far for far in fars}, impostor_pairs)
    return tuple(kept.values())


def tar_field(far: float) -> str:
    """The study result's field of TAR at ``far``: ``verification_tar_at_far_1e-03``."""
    return f"verification_tar_at_far_{rate_key(far)}"


def tar_label(far: float) -> str:
    """The column name of TAR at ``far``, as every report prints it: ``TAR@FAR=1e-03``."""
    return f"TAR@FAR={rate_key(far)}"


def feature_geometry(features: np.ndarray, labels: np.ndarray) -> dict:
    """Compactness and separation of L2-normalized features around their class centres.

    intra: mean cosine of each feature to its own class centre (the normalized class mean);
    inter: mean and max cosine between distinct class centres."""
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    classes = np.unique(labels)
    centres = np.stack([unit[labels == c].mean(axis=0) for c in classes])
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    own = centres[np.searchsorted(classes, labels)]
    between = centres @ centres.T
    off_diagonal = between[~np.eye(len(classes), dtype=bool)]
    return {
        "intra_class_cosine": float(np.mean(np.sum(unit * own, axis=1))),
        "inter_class_cosine_mean": float(off_diagonal.mean()),
        "inter_class_cosine_max": float(off_diagonal.max()),
    }


def decision_point(head) -> float | None:
    """The one threshold rule for every binary (BCE-type) head, in the units of
    :func:`facebench.eval.uniform_model.score_units`; None for other heads.

    The decision point is where the class's positive and negative terms meet, i.e. where the
    positive logit is minus the negative one (z+ = -z-): the centre of the margin band. A cosine
    margin m on the positive only (BCE heads) puts it at b/γ + m/2 (unified bias) or at m/2 on
    cos θ - b_k/γ (per-class biases; 0 on w·x - b_k for linear heads); SphereFace2's margin on
    both sides puts it at g⁻¹(b/r), its ``decision_threshold``. The loss weights (λ) are not
    part of the rule. A BCE head with another margin type has no single point: None."""
    from facebench.eval.uniform_model import score_units
    from facebench.heads.bce import BCEHead
    from facebench.heads.sphereface2 import SphereFace2Head

    if isinstance(head, SphereFace2Head):
        return head.decision_threshold().value
    if not isinstance(head, BCEHead) or head.bias_mode not in ("unified", "class"):
        return None
    if head.margin and head.margin_type != "cosine":
        return None
    return score_units(head)[0] + head.margin / 2


def measure_closed(model_path: Path, pack_dir: Path, geometry: bool = True) -> dict:
    """Sample-wise, class-wise and uniform accuracy, t* beside the head's decision point
    (:func:`decision_point`, same units) with the uniform accuracy there and the spread (std) of
    the own-class scores, and optionally the feature geometry, of a model on a pack of its classes.
    Each image is embedded once (no flip, not normalized) and scored by the head without margin."""
    from facebench.embed import embed_images, load_embedder
    from facebench.embed.sources import PackSource
    from facebench.eval.uniform import margin_metrics
    from facebench.eval.uniform_model import head_margins, score_units
    from facebench.models.artifact import load_head_from_artifact

    head = load_head_from_artifact(str(model_path))
    images = PackSource(str(pack_dir))
    features = embed_images(
        load_embedder(str(model_path)), images, 256, flip_sum=False, normalize=False, progress=False
    )
    labels = np.asarray(images.labels, dtype=np.int64)  # read while embedding
    offset, units = score_units(head)
    positive, negative = head_margins(head, features, labels, offset)
    point = decision_point(head)
    report = margin_metrics(positive, negative, labels, point)
    learned = head.decision_threshold()
    result = {
        schema.SAMPLE_ACCURACY: report[schema.SAMPLE_ACCURACY],
        schema.CLASS_WISE_ACCURACY_SAMPLE_WEIGHTED: report[
            schema.CLASS_WISE_ACCURACY_SAMPLE_WEIGHTED
        ],
        schema.CLASS_WISE_ACCURACY_CLASS_MEAN: report[schema.CLASS_WISE_ACCURACY_CLASS_MEAN],
        schema.UNIFORM_ACCURACY: report[schema.UNIFORM_ACCURACY],
        "t_star": report[schema.UNIFORM_THRESHOLD],
        "decision_point": point,
        "uniform_accuracy_at_decision_point": report[schema.UNIFORM_ACCURACY_AT_LEARNED_THRESHOLD],
        "learned_bias_threshold": None if learned is None else learned.value,
        "score_spread": float(np.std(positive)),
        schema.SCORE_UNITS: units,
    }
    if geometry:
        result.update(feature_geometry(features, labels))
    return result


def open_metrics(cos: np.ndarray, issame: np.ndarray) -> dict:
    """The open-set metrics of pair cosines in the bin layout (10 folds, each genuine then
    impostor pairs): 10-fold and global-threshold accuracy, TAR at :func:`supported_fars`."""
    from facebench.eval.verification import best_global_threshold, tar_at_far, ten_fold_accuracy

    fars = supported_fars(int(np.count_nonzero(~issame)))
    tars = tar_at_far(cos, issame, fars)
    return {
        "verification_accuracy_10fold": ten_fold_accuracy(2.0 - 2.0 * cos, issame)[
            schema.ACCURACY_10FOLD_MEAN
        ],
        "verification_global_accuracy": best_global_threshold(cos, issame)[1],
        **{tar_field(far): tars[rate_key(far)]["tar"] for far in fars},
    }


def pair_resamples(issame: np.ndarray, count: int, seed: int) -> np.ndarray:
    """``count`` bootstrap resamples of a bin's pair indices, (count, pairs): within each of
    the 10 folds, genuine pairs drawn with replacement from its genuine pairs and impostors from
    its impostors, in place, so every resample keeps the fold layout and the class balance."""
    from facebench.eval.verification import fold_bounds

    rng = np.random.default_rng(seed)
    out = np.empty((count, issame.size), dtype=np.int64)
    for start, stop in fold_bounds(issame.size):
        for same in (True, False):
            block = start + np.flatnonzero(issame[start:stop] == same)
            out[:, block] = rng.choice(block, size=(count, block.size))
    return out


def pair_bootstrap(cos: np.ndarray, issame: np.ndarray, partition: int) -> dict[str, list]:
    """Per open-set metric, its value on each of :data:`BOOTSTRAP_RESAMPLES` resamples of the
    pairs (:func:`pair_resamples`, seed BOOTSTRAP_SEED + ``partition``)."""
    samples = pair_resamples(issame, BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED + partition)
    values = [open_metrics(cos[i], issame[i]) for i in samples]
    return {metric: [v[metric] for v in values] for metric in values[0]}


def measure_open(model_path: Path, bin_path: Path, report_dir: Path, partition: int) -> dict:
    """Verification on pairs of a partition's held-out classes: 10-fold and global-threshold
    accuracy, TAR at the supported FARs (None at the others), and their pair bootstrap."""
    from facebench.embed import load_embedder
    from facebench.eval.verify_bins import scored_verification, write_verification_report

    embedder = load_embedder(str(model_path))
    scored = scored_verification(embedder, str(bin_path), batch_size=256, progress=False)
    report = scored.report
    write_verification_report(report_dir, report)
    result = {
        "verification_accuracy_10fold": report[schema.ACCURACY_10FOLD_MEAN],
        "verification_global_accuracy": report[schema.GLOBAL_ACCURACY],
        "verification_global_threshold": report[schema.GLOBAL_THRESHOLD],
        "verification_pairs": report["pairs"],
        "verification_impostor_pairs": report[schema.IMPOSTOR_PAIRS],
    }
    supported = supported_fars(report[schema.IMPOSTOR_PAIRS])
    for far in OPEN_SET_FARS:
        result[tar_field(far)] = (
            report[schema.TAR_AT_FAR][rate_key(far)] if far in supported else None
        )
    result[OPEN_BOOTSTRAP] = pair_bootstrap(scored.cos, scored.issame, partition)
    return result
