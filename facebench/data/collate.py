"""Batches of uint8 images for the DataLoader: read straight into one ``(N, H, W, 3)`` array and
collated without another copy, ready for :func:`facebench.data.model_input.model_input`."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import default_collate, get_worker_info

from facebench.errors import DataError


class RowBatch(list):
    """Samples ``(image, label)`` whose images are the rows of one uint8 array ``images``."""

    def __init__(self, images: np.ndarray, labels: list[int]):
        super().__init__(zip(images, labels, strict=True))
        self.images = images
        self.labels = labels


def read_batch(dataset, indices: list[int]) -> RowBatch:
    """``dataset[i]`` for each index, every image copied into one uint8 ``(N, H, W, 3)`` array
    as soon as it is decoded (memory is then reused image by image instead of holding N decoded
    images); an image of another size than the first is a DataError."""
    images = np.empty((0, 0, 0, 3), dtype=np.uint8)
    labels = []
    for row, index in enumerate(indices):
        rgb, label = dataset[index]
        if row == 0:
            images = np.empty((len(indices), *rgb.shape), dtype=np.uint8)
        elif rgb.shape != images.shape[1:]:
            raise DataError(
                f"image {index} is {rgb.shape[0]}x{rgb.shape[1]}, the first of its batch "
                f"{images.shape[1]}x{images.shape[2]}"
            )
        images[row] = rgb
        labels.append(label)
    return RowBatch(images, labels)


def collate_images(samples: list[tuple[np.ndarray, int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """``[(uint8 (H, W, 3), label)]`` -> ``(uint8 (N, H, W, 3), int64 (N,))``.

    A :class:`RowBatch` hands its array on as it is. In a DataLoader worker the default
    collate writes the batch into shared memory (the hand-over to the main process copies
    nothing more); elsewhere numpy stacks the images.
    """
    if get_worker_info() is not None:
        return default_collate(list(samples))
    labels = torch.tensor([label for _, label in samples], dtype=torch.int64)
    if isinstance(samples, RowBatch):
        return torch.from_numpy(samples.images), labels
    return torch.from_numpy(np.stack([image for image, _ in samples])), labels
