"""Gallery files from embedding files, and probe search with one global threshold to JSON/CSV."""

from __future__ import annotations

import csv
import logging
import math
import os

import numpy as np

from facebench import schema
from facebench.embed.io import load_embeddings
from facebench.errors import ConfigError, DataError
from facebench.fileio import atomic_file, exclusive, read_json, write_json
from facebench.search.gallery import UNKNOWN, Gallery, decide

log = logging.getLogger(__name__)


def _check_dim(gallery: Gallery, emb: np.ndarray, emb_path: str, index_path: str) -> None:
    if emb.shape[1] != gallery.dim:
        raise DataError(
            f"{emb_path}: {emb.shape[1]}-d embeddings, the gallery {index_path} holds "
            f"{gallery.dim}-d ones (same model?)"
        )


def identities_from_sidecar(meta: dict | None, path: str) -> list:
    """Row identities of an embedding file: the sidecar's ``identities``, else its ``labels``."""
    for key in ("identities", "labels"):
        if meta and meta.get(key) is not None:
            return list(meta[key])
    raise DataError(
        f"{path}: no identities: its sidecar needs 'identities' or 'labels' "
        "(embed a pack, a folder of identity folders, or a list with identities)"
    )


def build_gallery(
    embeddings_path: str, out_path: str, sidecar: str | None = None, factory: str = "Flat"
) -> Gallery:
    """A new gallery of the embeddings and their sidecar identities, saved to ``out_path``."""
    emb, meta = load_embeddings(embeddings_path, sidecar)
    gallery = Gallery(emb.shape[1], factory)
    gallery.add(emb, identities_from_sidecar(meta, embeddings_path))
    gallery.save(out_path)
    return gallery


def add_to_gallery(index_path: str, embeddings_path: str, sidecar: str | None = None) -> Gallery:
    """Append embeddings (with sidecar identities) to a saved gallery, in place (atomically);
    concurrent adds to one gallery wait for each other, so none is lost."""
    emb, meta = load_embeddings(embeddings_path, sidecar)
    with exclusive(index_path, wait=True, what="gallery index"):
        gallery = Gallery.load(index_path)
        _check_dim(gallery, emb, embeddings_path, index_path)
        gallery.add(emb, identities_from_sidecar(meta, embeddings_path))
        gallery.save(index_path)
    return gallery


def threshold_from_report(path: str, far: float | None = None) -> float:
    """The cosine threshold a report chose (see :data:`facebench.schema.THRESHOLD_FIELDS`): the
    oracle global threshold of a verification or IJB report, or with ``far`` the threshold at
    that target (TAR@FAR with FAR <= target; DIR@FPIR for an identification report). On the
    report's own data it gives exactly the accuracy / rates printed beside it."""
    report = read_json(path)
    kind = report.get(schema.KIND)
    if kind not in schema.THRESHOLD_FIELDS:
        raise DataError(
            f"{path}: a {kind or 'non-facebench'} report holds no decision threshold; use a "
            "per-bin report of facebench verify, an IJB report or an identification report"
        )
    global_field, rate_field = schema.THRESHOLD_FIELDS[kind]
    if far is None:
        if global_field is None:
            raise DataError(f"{path}: an {kind} report has thresholds per FPIR only; pass --far")
        value, what = report.get(global_field), global_field
    else:
        key = schema.rate_key(far)
        rates = report.get(rate_field) or {}
        value, what = rates.get(key), f"{rate_field}[{key}]"
        if value is None:
            have = ", ".join(rates) or "none"
            raise DataError(f"{path}: no {what} (targets in this report: {have})")
    if not isinstance(value, (int, float)):
        raise DataError(f"{path}: no {what} in this {kind} report")
    return float(value)


def _probe_names(meta: dict | None, count: int) -> list:
    for key in ("paths", "ids"):
        if meta and meta.get(key) is not None:
            return list(meta[key])
    return list(range(count))


def ranked_hits(
    cosines: np.ndarray, identities: np.ndarray, k: int, distinct: bool = True
) -> list[list]:
    """Per row of a search result (best first): up to ``k`` ``(identity, cosine)`` pairs, each
    identity once with its best cosine when ``distinct``; empty slots (cosine -inf) skipped."""
    rows = []
    for cos_row, id_row in zip(cosines.tolist(), identities.tolist(), strict=True):
        hits = []
        for cosine, identity in zip(cos_row, id_row, strict=True):
            if len(hits) == k:
                break
            if math.isfinite(cosine) and not (distinct and any(identity == h[0] for h in hits)):
                hits.append((identity, cosine))
        rows.append(hits)
    return rows


def search_probes(
    index_path: str,
    probes_path: str,
    threshold: float,
    top_k: int = 5,
    sidecar: str | None = None,
    search_params: str | None = None,
    per_image: bool = False,
) -> dict:
    """The top-k identities (best cosine of each; ``per_image``: the top-k gallery images, an
    identity may repeat) and a decision (identity or "unknown") for every probe."""
    if top_k < 1:
        raise ConfigError(f"--top-k must be at least 1, got {top_k}")
    gallery = Gallery.load(index_path)
    if search_params:
        gallery.set_search_params(search_params)
    probes, meta = load_embeddings(probes_path, sidecar)
    _check_dim(gallery, probes, probes_path, index_path)
    # k images per identity at most are enough to hold k distinct identities
    images_of_one = (
        1 if per_image else int(np.unique(gallery.identities, return_counts=True)[1].max())
    )
    cosines, identities = gallery.search(probes, top_k * images_of_one)
    names = _probe_names(meta, len(probes))
    decisions = decide(cosines[:, 0], identities[:, 0], threshold)
    tops = ranked_hits(cosines, identities, top_k, distinct=not per_image)
    results = [
        {
            "probe": name,
            "decision": decision,
            "top": [{"identity": i, "cosine": float(c)} for i, c in top],
        }
        for name, decision, top in zip(names, decisions, tops, strict=True)
    ]
    unknown = sum(r["decision"] == UNKNOWN for r in results)
    return {
        schema.KIND: schema.SEARCH,
        "index": os.path.abspath(index_path),
        "gallery_size": len(gallery),
        "ranking": "image" if per_image else "identity",
        "threshold": float(threshold),
        "top_k": max((len(r["top"]) for r in results), default=0),
        "probes": len(results),
        "identified": len(results) - unknown,
        "unknown": unknown,
        "results": results,
    }


def write_search_results(path: str, report: dict) -> str:
    """``.json``: the whole report; ``.csv``: one row per probe (decision, then top-k pairs)."""
    if path.endswith(".json"):
        return write_json(path, report)
    if not path.endswith(".csv"):
        raise ConfigError(f"--out {path}: results go to a .json or .csv file")
    with atomic_file(path, "w", newline="") as f:
        writer = csv.writer(f)
        k = report["top_k"]
        header = ["probe", "decision"]
        for i in range(1, k + 1):
            header += [f"identity_{i}", f"cosine_{i}"]
        writer.writerow(header)
        for r in report["results"]:
            row = [r["probe"], r["decision"]]
            for hit in r["top"]:
                row += [hit["identity"], f"{hit['cosine']:.6f}"]
            writer.writerow(row)
    return path
