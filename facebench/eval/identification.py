"""1:N identification with a faiss gallery: closed-set CMC and open-set DIR / TPIR at FPIR.

Definitions (NIST FRVT 1:N, the ones IJB-B/C and MegaFace results use):
- a *mated* probe's identity is enrolled in the gallery; a *non-mated* probe's is not.
- FPIR(t): fraction of non-mated probes whose top-1 cosine is > t (any gallery entry).
- DIR(t) = rank-1 TPIR(t): fraction of mated probes whose top-1 entry is their own identity
  with cosine > t. One global threshold t per FPIR target: the lowest with FPIR(t) <= target,
  i.e. the (k+1)-th highest non-mated top-1 cosine for k = floor(target * n_non_mated).
- CMC rank r: fraction of mated probes whose identity is among the first r distinct identities
  returned (closed set: no threshold).
"""

from __future__ import annotations

import numpy as np

from facebench import schema
from facebench.embedding_rows import row_norms, unit_rows
from facebench.errors import EvalError
from facebench.eval.verification import rates_at_targets

TARGET_FPIRS = (1e-3, 1e-2, 1e-1)
CMC_RANKS = (1, 5, 10)


def rates_at_fpir(mated_hits: np.ndarray, nonmated_top1: np.ndarray, fpirs=TARGET_FPIRS) -> dict:
    """``{key: {"tpir", "fpir", "threshold"}}`` for each FPIR target that the non-mated count
    allows (n * FPIR >= 1). ``mated_hits``: the top-1 cosine of each mated probe when that entry
    is its own identity, -inf otherwise."""
    rates = rates_at_targets(mated_hits, nonmated_top1, fpirs)
    return {k: {"tpir": t, "fpir": f, "threshold": tau} for k, (t, f, tau) in rates.items()}


def distinct_ranks(found_ids: np.ndarray, probe_ids: np.ndarray) -> np.ndarray:
    """1-based rank of each probe's identity among the distinct identities in its result row
    (``found_ids`` ordered best first); 0 when absent."""
    ranks = np.zeros(len(probe_ids), np.int64)
    for i, (row, want) in enumerate(zip(found_ids.tolist(), probe_ids.tolist(), strict=True)):
        seen = set()
        for ident in row:
            if ident == want:
                ranks[i] = len(seen) + 1
                break
            seen.add(ident)
    return ranks


def _distractor_ids(known: np.ndarray, count: int) -> np.ndarray:
    """Identities for distractors that collide with no gallery or probe identity."""
    if known.dtype.kind in "iu":
        return int(known.min(initial=0)) - 1 - np.arange(count, dtype=np.int64)
    return np.array([f"distractor:{i}" for i in range(count)])


def _check(name: str, emb: np.ndarray, ids: np.ndarray, dim: int | None = None) -> np.ndarray:
    emb = np.asarray(emb)
    if emb.ndim != 2 or (dim is not None and emb.shape[1] != dim):
        raise EvalError(f"{name}: embeddings of shape {emb.shape} (expected (N, {dim or 'd'}))")
    if ids is not None and len(ids) != len(emb):
        raise EvalError(f"{name}: {len(emb)} embeddings but {len(ids)} identities")
    row_norms(emb, name)
    return emb


def identification_metrics(
    gallery: np.ndarray,
    gallery_ids,
    probes: np.ndarray,
    probe_ids,
    distractors: np.ndarray | None = None,
    factory: str = "Flat",
    search_params: str | None = None,
    ranks=CMC_RANKS,
    fpirs=TARGET_FPIRS,
    device: str = "cpu",
    gpu_shard: bool = False,
) -> dict:
    """CMC, DIR@FPIR and (for approximate indexes) recall@1 against exact search.

    Embeddings are normalized by the gallery; ``distractors`` (MegaFace-style) join the gallery
    as distinct unknown identities; ``device`` "cuda" runs faiss on the visible GPUs."""
    from facebench.search import Gallery

    gallery_ids, probe_ids = np.asarray(gallery_ids), np.asarray(probe_ids)
    gallery = _check("gallery", gallery, gallery_ids)
    dim = gallery.shape[1]
    probes = _check("probes", probes, probe_ids, dim)
    parts, ids = [gallery], [gallery_ids]
    if distractors is not None and len(distractors):
        parts.append(_check("distractors", distractors, None, dim))
        known = np.concatenate([gallery_ids, probe_ids])
        ids.append(_distractor_ids(known, len(distractors)))
    index = Gallery(dim, factory)
    index.to_device(device, gpu_shard)
    all_emb = np.concatenate(parts)
    index.add(all_emb, np.concatenate(ids))
    if search_params:
        index.set_search_params(search_params)

    mated = np.isin(probe_ids, gallery_ids)
    if not mated.any():
        raise EvalError("identification: no probe identity is enrolled in the gallery")
    _, per_identity = np.unique(gallery_ids, return_counts=True)
    k = min(len(index), max(ranks) * int(per_identity.max()))
    cosines, found = index.search(probes, k)
    rank = distinct_ranks(found[mated], probe_ids[mated])
    top_hit = found[mated, 0] == probe_ids[mated]
    report = {
        schema.KIND: schema.IDENTIFICATION,
        "factory": factory,
        "search_params": search_params,
        "gallery_size": len(gallery),
        "gallery_identities": int(per_identity.size),
        "distractors": 0 if distractors is None else len(distractors),
        "mated_probes": int(mated.sum()),
        "non_mated_probes": int((~mated).sum()),
        schema.CMC: {str(r): float(np.mean((rank >= 1) & (rank <= r))) for r in ranks},
    }
    if (~mated).any():
        rates = rates_at_fpir(
            np.where(top_hit, cosines[mated, 0], -np.inf), cosines[~mated, 0], fpirs
        )
        report[schema.DIR_AT_FPIR] = {key: v["tpir"] for key, v in rates.items()}
        report[schema.DIR_THRESHOLD] = {key: v["threshold"] for key, v in rates.items()}
        report[schema.FPIR_ACTUAL] = {key: v["fpir"] for key, v in rates.items()}
    report["recall_at_1_vs_exact"] = (
        None if factory == "Flat" else exact_recall_at_1(index, all_emb, probes)
    )
    return report


def exact_recall_at_1(index, database: np.ndarray, probes: np.ndarray) -> float:
    """Fraction of probes whose top-1 row in ``index`` (a Gallery) is the exact nearest row."""
    import faiss

    exact = faiss.IndexFlatIP(index.dim)
    exact.add(unit_rows(database, "gallery"))
    unit = unit_rows(probes, "probes")
    _, want = exact.search(unit, 1)
    _, got = index.index.search(unit, 1)
    return float(np.mean(want[:, 0] == got[:, 0]))
