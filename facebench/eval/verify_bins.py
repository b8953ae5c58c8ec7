"""Verification bins end to end: embed (or load embeddings), score, write one JSON per bin."""

from __future__ import annotations

import logging
import os

from facebench.embed.io import load_embeddings
from facebench.errors import EvalError
from facebench.eval.verification import (
    VAL_FAR,
    check_pairs,
    pair_scores,
    score_report,
    transfer_table,
)
from facebench.report.jsonio import write_json

log = logging.getLogger(__name__)


def bin_name(path: str) -> str:
    """``.../lfw.bin`` -> ``lfw``."""
    return os.path.splitext(os.path.basename(str(path)))[0]


def verify_bins(
    bin_paths: list[str],
    out_dir: str,
    embedder=None,
    embedding_paths: list[str] | None = None,
    batch_size: int = 64,
    target_far: float = VAL_FAR,
    model_name: str | None = None,
    progress: bool = True,
) -> dict[str, dict]:
    """Score each bin with ``embedder`` (flip-sum) or the matching ``.npy`` of
    ``embedding_paths``; write ``out_dir/<bin>.json`` and ``out_dir/transfer.json``.
    ``model_name`` labels the reports (default: the model or embeddings path)."""
    from facebench.embed.sources import BinSource

    if (embedder is None) == (embedding_paths is None):
        raise EvalError("verify: give either a model or precomputed embeddings, not both")
    if embedding_paths is not None and len(embedding_paths) != len(bin_paths):
        raise EvalError(
            f"verify: {len(embedding_paths)} embedding files for {len(bin_paths)} bins "
            "(give one per bin, in the same order)"
        )
    names = [bin_name(p) for p in bin_paths]
    if len(set(names)) != len(names):
        raise EvalError(f"verify: two bins share a name: {names}")
    reports, scores = {}, {}
    for i, (path, name) in enumerate(zip(bin_paths, names, strict=True)):
        images = BinSource(path)
        vbin = images.vbin
        if embedder is not None:
            from facebench.embed import embed_images

            log.info("%s: embedding %d images (flip-sum)", name, len(images))
            emb = embed_images(embedder, images, batch_size, progress=progress)
            model = getattr(embedder, "path", None) or embedder.name
            source = str(path)
        else:
            emb, _ = load_embeddings(embedding_paths[i])
            model = embedding_paths[i]
            source = f"{embedding_paths[i]} for {path}"
        unit = check_pairs(emb, vbin.issame, source)
        dist, cos = pair_scores(unit)
        report = {"name": name, "bin": str(path), "model": str(model_name or model)}
        report.update(score_report(dist, cos, vbin.issame, source))
        write_json(os.path.join(out_dir, f"{name}.json"), report)
        log.info(
            "%s: 10-fold %.4f +- %.4f, global %.4f at cos %.3f, EER %.4f",
            name,
            report["accuracy_10fold_mean"],
            report["accuracy_10fold_std"],
            report["global_accuracy"],
            report["global_threshold"],
            report["eer"],
        )
        reports[name] = report
        scores[name] = (cos, vbin.issame)
    table = transfer_table(scores, target_far)
    write_json(os.path.join(out_dir, "transfer.json"), {"kind": "transfer", **table})
    return reports
