"""Gallery files from embedding files, and probe search with one global threshold to JSON/CSV."""

from __future__ import annotations

import csv
import logging
import math
import os
from contextlib import nullcontext

import numpy as np

from facebench import schema
from facebench.embed.io import load_embeddings, sidecar_path
from facebench.errors import ConfigError, DataError
from facebench.fileio import atomic_file, atomic_path, exclusive, read_json, staged, write_json
from facebench.search.gallery import UNKNOWN, Gallery, decide
from facebench.search.gallery_file import as_identities, lists_path_of
from facebench.search.gpu import check_device
from facebench.search.shards import Shard, open_shards, sample_rows

log = logging.getLogger(__name__)


def _check_dim(gallery: Gallery, emb, emb_path: str, index_path: str) -> None:
    """``emb``: an array or a :class:`Shard` (anything with ``dim`` or ``shape``)."""
    dim = emb.dim if isinstance(emb, Shard) else emb.shape[1]
    if dim != gallery.dim:
        raise DataError(
            f"{emb_path}: {dim}-d embeddings, the gallery {index_path} holds "
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


def _shard_identities(shards: list[Shard]) -> np.ndarray:
    """The identities of all shards in order, one kind (integers or strings) throughout."""
    parts = [as_identities(identities_from_sidecar(s.meta(), s.path), s.rows) for s in shards]
    for shard, part in zip(shards[1:], parts[1:], strict=True):
        if part.dtype.kind != parts[0].dtype.kind:
            raise DataError(
                f"{sidecar_path(shard.path)}: identities are {part.dtype}, those of "
                f"{shards[0].path} are {parts[0].dtype} (one kind for the whole gallery)"
            )
    return np.concatenate(parts)


def _stream_into(gallery: Gallery, shards: list[Shard], identities: np.ndarray) -> None:
    """Add every shard, chunk by chunk, with its identities."""
    chunks = (chunk for shard in shards for _, chunk in shard.chunks())
    gallery.add_chunks(chunks, identities, sum(s.rows for s in shards))


def _lists_file(index_path: str, on_disk: bool):
    """A temporary name that becomes the lists file of ``index_path`` (``.ivfdata`` beside it)
    when the block succeeds (None when not ``on_disk``); removed on failure."""
    return atomic_path(lists_path_of(index_path), ".ivfdata") if on_disk else nullcontext()


def build_gallery(
    embeddings_paths: list[str],
    out_path: str,
    sidecar: str | None = None,
    factory: str = "Flat",
    on_disk: bool = False,
    train_rows: int | None = None,
    device: str = "cpu",
    gpu_shard: bool = False,
) -> Gallery:
    """A new gallery of one or more embedding files (shards, streamed, never loaded whole) and
    their sidecar identities, saved to ``out_path``. Indexes that need training train on
    ``train_rows`` rows sampled over all shards (default :meth:`Gallery.training_rows`);
    ``on_disk`` keeps an IVF index's inverted lists in ``out_path + ".ivfdata"``; ``device``
    "cuda" trains and adds on the visible GPUs (see :meth:`Gallery.to_device`)."""
    check_device(device)
    if on_disk and device != "cpu":
        raise ConfigError("--on-disk builds on the CPU (GPU indexes hold their lists on the GPU)")
    shards = open_shards(list(embeddings_paths), sidecar)
    identities = _shard_identities(shards)  # checked before any work
    gallery = Gallery(shards[0].dim, factory)
    total = sum(s.rows for s in shards)
    if train_rows is not None and train_rows < 1:
        raise ConfigError(f"--train-rows must be at least 1, got {train_rows}")
    train_rows = train_rows or gallery.training_rows(total)
    gallery.to_device(device, gpu_shard)
    with staged(), _lists_file(out_path, on_disk) as lists:
        if lists is not None:
            gallery.store_lists_on_disk(lists)
        if not gallery.index.is_trained:
            gallery.train(sample_rows(shards, train_rows))
        _stream_into(gallery, shards, identities)
        gallery.save(out_path)
    return gallery


def add_to_gallery(
    index_path: str, embeddings_paths: list[str], sidecar: str | None = None
) -> Gallery:
    """Append embedding files (streamed, with sidecar identities) to a saved gallery, in place
    and atomically (an on-disk gallery's lists are extended in a copy, both files renamed at the
    end); concurrent adds to one gallery wait for each other, so none is lost."""
    shards = open_shards(list(embeddings_paths), sidecar)
    with exclusive(index_path, wait=True, what="gallery index"):
        gallery = Gallery.load(index_path)
        for shard in shards:
            _check_dim(gallery, shard, shard.path, index_path)
        identities = _shard_identities(shards)
        with staged(), _lists_file(index_path, gallery.lists_path is not None) as lists:
            if lists is not None:
                gallery.move_lists(lists)
            _stream_into(gallery, shards, identities)
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
    device: str = "cpu",
    gpu_shard: bool = False,
) -> dict:
    """The top-k identities (best cosine of each; ``per_image``: the top-k gallery images, an
    identity may repeat) and a decision (identity or "unknown") for every probe; ``device``
    "cuda" searches on the visible GPUs."""
    if top_k < 1:
        raise ConfigError(f"--top-k must be at least 1, got {top_k}")
    check_device(device)
    gallery = Gallery.load(index_path)
    gallery.to_device(device, gpu_shard)
    if search_params:
        gallery.set_search_params(search_params)
    probes, meta = load_embeddings(probes_path, sidecar)
    _check_dim(gallery, probes, probes_path, index_path)
    # k images per identity at most are enough to hold k distinct identities
    images_of_one = 1 if per_image else gallery.most_rows_of_one_identity()
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
