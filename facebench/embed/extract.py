"""Batch embedding of image collections with flip-sum and L2 normalization."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
from tqdm import tqdm

from facebench.data.images import hflip
from facebench.embedding_rows import row_norms, unit_rows
from facebench.errors import DataError


def _batches(images, batch_size: int) -> Iterator[np.ndarray]:
    """uint8 ``(B, H, W, 3)`` batches from an NHWC array or any iterable of HWC images."""
    if isinstance(images, np.ndarray):
        if images.ndim != 4 or images.shape[-1] != 3:
            raise DataError(f"expected images of shape (N, H, W, 3), got {images.shape}")
        if images.dtype != np.uint8:
            raise DataError(f"expected uint8 images, got {images.dtype}")
        for start in range(0, len(images), batch_size):
            yield images[start : start + batch_size]
        return
    batch: list[np.ndarray] = []
    for index, image in enumerate(images):
        image = np.asarray(image)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
            raise DataError(
                f"image {index}: expected uint8 (H, W, 3) RGB, got {image.dtype} {image.shape}"
            )
        if batch and image.shape != batch[0].shape:
            raise DataError(
                f"image {index}: size {image.shape[0]}x{image.shape[1]} differs from "
                f"{batch[0].shape[0]}x{batch[0].shape[1]} of the images before it"
            )
        batch.append(image)
        if len(batch) == batch_size:
            yield np.stack(batch)
            batch = []
    if batch:
        yield np.stack(batch)


def embed_images(
    embedder,
    images: np.ndarray | Iterable[np.ndarray],
    batch_size: int = 64,
    flip_sum: bool = True,
    normalize: bool = True,
    progress: bool = True,
) -> np.ndarray:
    """float32 ``(N, d)`` embeddings in input order: emb(img) [+ emb(flip)], then L2-normalized."""
    if batch_size < 1:
        raise DataError(f"batch size must be at least 1, got {batch_size}")
    total = len(images) if hasattr(images, "__len__") else None
    chunks = []
    with tqdm(total=total, desc="embed", unit="img", disable=not progress) as bar:
        for batch in _batches(images, batch_size):
            if flip_sum:
                both = embedder.embed(np.concatenate([batch, hflip(batch)]))
                out = both[: len(batch)] + both[len(batch) :]
            else:
                out = embedder.embed(batch)
            chunks.append(np.asarray(out, dtype=np.float32))
            bar.update(len(batch))
    if not chunks:
        raise DataError("no images to embed")
    emb = np.concatenate(chunks)
    source = f"{getattr(images, 'path', 'images')}: the model's output"
    if normalize:
        return unit_rows(emb, source)
    row_norms(emb, source)
    return emb
