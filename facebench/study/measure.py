"""What the study measures on a trained run, through the package's own evaluation functions."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facebench.schema import rate_key

#: FAR targets of the open-set table (1e-3 needs >= 1,000 impostor pairs).
OPEN_SET_FARS = (1e-2, 1e-3)


def tar_field(far: float) -> str:
    """The study result's field of TAR at ``far``: ``verification_tar_at_far_1e-03``."""
    return f"verification_tar_at_far_{rate_key(far)}"


def tar_label(far: float) -> str:
    """The column name of TAR at ``far``: ``TAR@FAR=1e-3``."""
    return f"TAR@FAR={far:.0e}".replace("e-0", "e-")


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


def measure_closed(model_path: Path, pack_dir: Path, geometry: bool = True) -> dict:
    """Sample-wise, class-wise and uniform accuracy, t* beside the learned threshold (the same
    units), and optionally the feature geometry, of a model's head on a pack of its classes."""
    from facebench.embed import embed_images, load_embedder
    from facebench.embed.sources import PackSource
    from facebench.eval.uniform_model import evaluate_uniform_model

    report = evaluate_uniform_model(str(model_path), str(pack_dir), progress=False)
    keys = (
        "sample_accuracy",
        "class_wise_accuracy_sample_weighted",
        "class_wise_accuracy_class_mean",
        "uniform_accuracy",
        "learned_threshold",
        "uniform_accuracy_at_learned_threshold",
        "score_units",
    )
    result = {k: report.get(k) for k in keys}
    result["t_star"] = report["uniform_threshold"]
    if geometry:
        images = PackSource(str(pack_dir))
        embedder = load_embedder(str(model_path))
        features = embed_images(
            embedder, images, 256, flip_sum=False, normalize=False, progress=False
        )
        result.update(feature_geometry(features, np.asarray(images.labels)))
    return result


def measure_open(model_path: Path, bin_path: Path, report_dir: Path) -> dict:
    """Verification on pairs of held-out classes: 10-fold, global-threshold accuracy, TAR@FAR."""
    from facebench.embed import load_embedder
    from facebench.eval.verify_bins import verification_report, write_verification_report

    embedder = load_embedder(str(model_path))
    report = verification_report(embedder, str(bin_path), batch_size=256, progress=False)
    write_verification_report(report_dir, report)
    result = {
        "verification_accuracy_10fold": report["accuracy_10fold_mean"],
        "verification_global_accuracy": report["global_accuracy"],
        "verification_global_threshold": report["global_threshold"],
        "verification_pairs": report["pairs"],
        "verification_impostor_pairs": report["impostor_pairs"],
    }
    for far in OPEN_SET_FARS:
        result[tar_field(far)] = report["tar_at_far"].get(rate_key(far))
    return result
