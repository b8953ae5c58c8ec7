"""Verification bins end to end: embed (or load embeddings), score, write one JSON per bin.

:func:`scored_verification` is THE way from a model and a pair source to a verification report
(:func:`embed_pairs`, then :func:`score_pairs`); the training hook and the study call it through
:func:`verification_report`, and :func:`verify_bins` (`facebench verify`, the hook's final
reports) calls it per bin and adds the JSON files and the transfer table.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np

from facebench import schema
from facebench.embed.io import load_embeddings
from facebench.errors import EvalError
from facebench.eval.verification import (
    VAL_FAR,
    check_pairs,
    pair_scores,
    score_report,
    transfer_table,
)
from facebench.fileio import write_json

log = logging.getLogger(__name__)


def bin_name(path: str) -> str:
    """``.../lfw.bin`` -> ``lfw``."""
    return os.path.splitext(os.path.basename(str(path)))[0]


def model_label(embedder) -> str:
    """What a report's ``model`` field says about an embedder: its file, else its name."""
    return str(getattr(embedder, "path", None) or embedder.name)


def pair_source(pairs):
    """A :class:`~facebench.embed.sources.BinSource` for a bin path (a source is returned as is)."""
    from facebench.embed.sources import BinSource

    return pairs if isinstance(pairs, BinSource) else BinSource(str(pairs))


@dataclass
class ScoredPairs:
    """One data set's report and the pair cosines it was computed from (for transfer tables)."""

    report: dict
    cos: np.ndarray
    issame: np.ndarray


def embed_pairs(
    embedder, pairs, batch_size: int = 64, progress: bool = True, sharding=None
) -> np.ndarray | None:
    """Flip-sum embeddings of the 2P images of a BinSource, in bin order (with ``sharding``:
    embedded by every rank, on rank 0; None on the others)."""
    from facebench.embed.distributed import embed_rows

    if progress:  # names the bar below
        log.info("%s: embedding %d images (flip-sum)", pairs.path, len(pairs))
    return embed_rows(embedder, pairs, sharding, batch_size=batch_size, progress=progress)


def score_pairs(embeddings, pairs, name: str, model: str, source: str) -> ScoredPairs:
    """The report of ``(2P, d)`` embeddings of a BinSource's images: name, bin, model, scores."""
    issame = pairs.vbin.issame
    unit = check_pairs(embeddings, issame, source)
    dist, cos = pair_scores(unit)
    report = {"name": name, "bin": pairs.path, "model": model}
    report.update(score_report(dist, cos, issame, source))
    return ScoredPairs(report, cos, np.asarray(issame, dtype=bool))


def scored_verification(
    embedder,
    pairs,
    *,
    name: str | None = None,
    model: str | None = None,
    batch_size: int = 64,
    progress: bool = True,
    sharding=None,
) -> ScoredPairs | None:
    """THE way from an embedder and a pair source (a bin path or BinSource) to a verification
    report: ``name`` (default: the bin's), ``bin``, ``model`` (default :func:`model_label`) and
    every field of :func:`facebench.eval.verification.score_report`, with the pair cosines.
    With a :class:`~facebench.embed.distributed.Sharding` every rank embeds a shard and rank 0
    scores; the other ranks return None."""
    pairs = pair_source(pairs)
    emb = embed_pairs(embedder, pairs, batch_size, progress, sharding)
    if emb is None:
        return None
    model = model or model_label(embedder)
    return score_pairs(emb, pairs, name or bin_name(pairs.path), model, pairs.path)


def verification_report(embedder, pairs, **options) -> dict:
    """The report of :func:`scored_verification` (same options), without the pair cosines."""
    return scored_verification(embedder, pairs, **options).report


def write_verification_report(out_dir: str | os.PathLike, report: dict) -> str:
    """Write ``out_dir/<name>.json`` (atomically); return its path."""
    return write_json(os.path.join(str(out_dir), f"{report['name']}.json"), report)


def verify_bins(
    bin_paths: list,
    out_dir: str | os.PathLike,
    embedder=None,
    embedding_paths: list[str] | None = None,
    batch_size: int = 64,
    target_far: float = VAL_FAR,
    model_name: str | None = None,
    progress: bool = True,
    sharding=None,
) -> dict[str, dict] | None:
    """Score each bin (path or BinSource) with ``embedder`` (flip-sum) or the matching ``.npy``
    of ``embedding_paths``; write ``out_dir/<bin>.json`` and ``out_dir/transfer.json``.
    ``model_name`` labels the reports (default: the model or embeddings path). With
    ``sharding`` (an embedder only) the ranks share the embedding and rank 0 scores and writes;
    the other ranks return None."""
    if (embedder is None) == (embedding_paths is None):
        raise EvalError("verify: give either a model or precomputed embeddings, not both")
    if embedding_paths is not None and len(embedding_paths) != len(bin_paths):
        raise EvalError(
            f"verify: {len(embedding_paths)} embedding files for {len(bin_paths)} bins "
            "(give one per bin, in the same order)"
        )
    sources = [pair_source(p) for p in bin_paths]
    if embedder is None and sharding is not None and not sharding.is_main:
        return None  # nothing to embed: rank 0 scores the given embeddings
    names = [bin_name(s.path) for s in sources]
    if len(set(names)) != len(names):
        raise EvalError(f"verify: two bins share a name: {names}")
    reports, scores = {}, {}
    for i, (pairs, name) in enumerate(zip(sources, names, strict=True)):
        if embedder is not None:
            scored = scored_verification(
                embedder,
                pairs,
                name=name,
                model=model_name,
                batch_size=batch_size,
                progress=progress,
                sharding=sharding,
            )
            if scored is None:  # not rank 0 of a sharded run
                continue
        else:
            emb, _ = load_embeddings(embedding_paths[i])
            source = f"{embedding_paths[i]} for {pairs.path}"
            scored = score_pairs(emb, pairs, name, model_name or embedding_paths[i], source)
        report = scored.report
        write_verification_report(out_dir, report)
        reports[name] = report
        scores[name] = (scored.cos, scored.issame)
    if sharding is not None and not sharding.is_main:
        return None
    table = transfer_table(scores, target_far)
    write_json(os.path.join(str(out_dir), "transfer.json"), {schema.KIND: schema.TRANSFER, **table})
    return reports
