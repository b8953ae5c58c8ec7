"""Batches of uint8 images for the DataLoader: read straight into one ``(N, H, W, 3)`` array and
collated without another copy, ready for :func:`facebench.data.model_input.model_input`."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.utils.data import default_collate, get_worker_info

from facebench.errors import DataError


class RowBatch(list):
    """Samples ``(image, label)`` whose images are the rows of one uint8 tensor ``batch``
    (``images`` is its numpy view)."""

    def __init__(self, batch: torch.Tensor, labels: list[int]):
        self.batch = batch
        self.images = batch.numpy()
        self.labels = labels
        super().__init__(zip(self.images, labels, strict=True))


def batch_tensor(shape: tuple[int, ...]) -> torch.Tensor:
    """An uninitialised uint8 tensor; in a DataLoader worker it lives in shared memory from the
    start, so handing it to the main process copies nothing (as the default collate does)."""
    if get_worker_info() is None:
        return torch.empty(shape, dtype=torch.uint8)
    storage = torch.UntypedStorage._new_shared(math.prod(shape))
    return torch.empty(0, dtype=torch.uint8).set_(storage).view(shape)


def read_batch(dataset, indices: list[int]) -> RowBatch:
    """``dataset[i]`` for each index, every image copied into one uint8 ``(N, H, W, 3)`` batch
    as soon as it is decoded (memory is then reused image by image instead of holding N decoded
    images); an image of another size than the first is a DataError."""
    batch = torch.empty((0, 0, 0, 3), dtype=torch.uint8)
    images = batch.numpy()
    labels = []
    for row, index in enumerate(indices):
        rgb, label = dataset[index]
        if row == 0:
            batch = batch_tensor((len(indices), *rgb.shape))
            images = batch.numpy()
        elif rgb.shape != images.shape[1:]:
            raise DataError(
                f"image {index} is {rgb.shape[0]}x{rgb.shape[1]}, the first of its batch "
                f"{images.shape[1]}x{images.shape[2]}"
            )
        images[row] = rgb
        labels.append(label)
    return RowBatch(batch, labels)


def collate_images(samples: list[tuple[np.ndarray, int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """``[(uint8 (H, W, 3), label)]`` -> ``(uint8 (N, H, W, 3), int64 (N,))``.

    A :class:`RowBatch` hands its tensor on as it is (in a worker it is already in shared
    memory). Other samples are stacked: by the default collate in a DataLoader worker (into
    shared memory), by numpy elsewhere.
    """
    labels = torch.tensor([label for _, label in samples], dtype=torch.int64)
    if isinstance(samples, RowBatch):
        return samples.batch, labels
    if get_worker_info() is not None:
        return default_collate(list(samples))
    return torch.from_numpy(np.stack([image for image, _ in samples])), labels
