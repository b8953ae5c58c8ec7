"""Uniform metrics of a trained model's head on a pack of images of its training identities."""

from __future__ import annotations

import numpy as np

from facebench import schema
from facebench.errors import EvalError, ModelError
from facebench.eval.uniform import margin_metrics


def score_units(head) -> tuple[float, str]:
    """(offset, units): scores / scale + offset are in the reported units.

    Unified bias: cosine (offset b/γ), the units of ``head.decision_threshold()``. Per-class
    bias: cosine − b_k/γ. No bias: cosine. Linear heads have γ = 1 and "w.x" for cosine."""
    cosine = "cosine" if head.normalized else "w.x"
    if head.bias_mode == "unified":
        return float(head.bias.detach()) / head.scale, cosine
    if head.bias_mode == "class":
        return 0.0, f"{cosine} - b_k/scale"
    return 0.0, cosine


def head_margins(head, embeddings: np.ndarray, labels: np.ndarray, offset: float, chunk=1024):
    """(own-class score, hardest other score) per row of ``head.scores / scale + offset``,
    in chunks so the N x K matrix never sits in memory at once."""
    import torch

    device = next(head.parameters()).device
    pos, neg = [], []
    for start in range(0, len(labels), chunk):
        x = torch.from_numpy(np.ascontiguousarray(embeddings[start : start + chunk])).to(device)
        s = head.scores(x).double().cpu() / head.scale + offset
        y = torch.from_numpy(labels[start : start + chunk])
        rows = torch.arange(len(y))
        pos.append(s[rows, y].clone())
        s[rows, y] = -torch.inf
        neg.append(s.max(dim=1).values)
    return torch.cat(pos).numpy(), torch.cat(neg).numpy()


def evaluate_uniform_model(
    model_path: str,
    pack_path: str,
    device: str = "cpu",
    batch_size: int = 64,
    flip_sum: bool = False,
    progress: bool = True,
    sharding=None,
) -> dict | None:
    """Uniform metrics of the head stored in ``model_path`` on every image of ``pack_path``.

    Embeddings are the backbone's raw outputs (``flip_sum`` adds the flipped image's), scored by
    the head without margin; thresholds are reported in the units of :func:`score_units`. With
    ``sharding`` the ranks share the embedding and rank 0 reports; the others return None."""
    from facebench.embed import load_embedder
    from facebench.embed.distributed import embed_rows
    from facebench.embed.sources import PackSource
    from facebench.models.artifact import load_head_from_artifact

    head = load_head_from_artifact(model_path, device)
    if head is None:
        raise ModelError(f"{model_path}: the model artifact holds no head to score classes with")
    embedder = load_embedder(model_path, device)
    images = PackSource(pack_path)
    emb = embed_rows(
        embedder,
        images,
        sharding,
        batch_size=batch_size,
        flip_sum=flip_sum,
        normalize=False,
        progress=progress,
    )
    if emb is None:
        return None
    labels = np.asarray(images.labels, dtype=np.int64)
    if labels.size and labels.max() >= head.num_classes:
        raise EvalError(
            f"{pack_path}: label {int(labels.max())} is outside the head's "
            f"{head.num_classes} classes (the pack must hold training identities)"
        )
    offset, units = score_units(head)
    decision = head.decision_threshold()
    threshold = None if decision is None else decision.value
    pos, neg = head_margins(head, emb, labels, offset)
    report = margin_metrics(pos, neg, labels, threshold)
    report[schema.LEARNED_THRESHOLD_UNITS] = None if decision is None else decision.units
    report.update(
        {
            "model": str(model_path),
            "pack": str(pack_path),
            "head": head.spec["name"] if hasattr(head, "spec") else type(head).__name__,
            "classes": int(head.num_classes),
            schema.SCORE_UNITS: units,
            "flip_sum": flip_sum,
        }
    )
    return report
