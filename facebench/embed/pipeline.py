"""Embed an image source with a model and write the ``.npy`` and its sidecar."""

from __future__ import annotations

import os

from facebench.embed.extract import embed_images
from facebench.embed.io import save_embedding_shards, save_embeddings, shards_shape
from facebench.embed.sources import ImageSource


def _sidecar(embedder, source: ImageSource, flip_sum, normalize, model_path) -> dict:
    return {
        "model": embedder.name,
        "model_path": None if model_path is None else os.path.abspath(model_path),
        "input_convention": embedder.convention.to_dict(),
        "flip_sum": bool(flip_sum),
        "normalized": bool(normalize),
        "source": {"kind": source.kind, "path": os.path.abspath(source.path)},
        **source.sidecar(),
    }


def embed_to_file(
    embedder,
    source: ImageSource,
    out_path: str,
    batch_size: int = 64,
    flip_sum: bool = True,
    normalize: bool = True,
    progress: bool = True,
    model_path: str | None = None,
    sharding=None,
) -> dict | None:
    """Embed every image of ``source``; write ``out_path`` (float32) and the sidecar; return it.

    With a :class:`~facebench.embed.distributed.Sharding`, every rank embeds its shard and rank
    0 streams the shards into ``out_path`` (the same file as one process writes) and returns
    the sidecar; the other ranks return None."""
    from facebench.embed.distributed import embedded_shards

    source.expected_size = embedder.convention.size
    options = dict(batch_size=batch_size, flip_sum=flip_sum, normalize=normalize, progress=progress)
    if sharding is None:
        emb = embed_images(embedder, source, **options)
        sidecar = _sidecar(embedder, source, flip_sum, normalize, model_path)
        _, side = save_embeddings(out_path, emb, sidecar)
        count, dim = emb.shape
    else:
        with embedded_shards(embedder, source, sharding, **options) as shards:
            if shards is None:
                return None
            sidecar = _sidecar(embedder, source, flip_sum, normalize, model_path)
            _, side = save_embedding_shards(out_path, shards, sidecar)
            count, dim = shards_shape(shards)
    return {**sidecar, "count": count, "dim": int(dim), "sidecar_path": side}
