"""Embed an image source with a model and write the ``.npy`` and its sidecar."""

from __future__ import annotations

import os

from facebench.embed.extract import embed_images
from facebench.embed.io import save_embeddings
from facebench.embed.sources import ImageSource


def embed_to_file(
    embedder,
    source: ImageSource,
    out_path: str,
    batch_size: int = 64,
    flip_sum: bool = True,
    normalize: bool = True,
    progress: bool = True,
    model_path: str | None = None,
) -> dict:
    """Embed every image of ``source``; write ``out_path`` (float32) and the sidecar; return it."""
    source.expected_size = embedder.convention.size
    emb = embed_images(
        embedder,
        source,
        batch_size=batch_size,
        flip_sum=flip_sum,
        normalize=normalize,
        progress=progress,
    )
    sidecar = {
        "model": embedder.name,
        "model_path": None if model_path is None else os.path.abspath(model_path),
        "input_convention": embedder.convention.to_dict(),
        "flip_sum": bool(flip_sum),
        "normalized": bool(normalize),
        "source": {"kind": source.kind, "path": os.path.abspath(source.path)},
        **source.sidecar(),
    }
    _, side = save_embeddings(out_path, emb, sidecar)
    return {**sidecar, "count": len(emb), "dim": int(emb.shape[1]), "sidecar_path": side}
