"""Batches of uint8 images for the DataLoader: read straight into one ``(N, H, W, 3)`` array and
collated without another copy, ready for :func:`facebench.data.model_input.model_input`."""

from __future__ import annotations

import math
import threading
import weakref
from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import default_collate, get_worker_info

from facebench.errors import DataError


class RowBatch(Sequence):
    """Samples ``(image, label)`` whose images are the rows of one uint8 tensor ``batch``
    (``images`` is its numpy view); a sample is made only when asked for."""

    def __init__(self, batch: torch.Tensor, labels: list[int]):
        if len(batch) != len(labels):
            raise ValueError(f"{len(batch)} images but {len(labels)} labels")
        self.batch = batch
        self.images = batch.numpy()
        self.labels = labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, row: int) -> tuple[np.ndarray, int]:
        return self.images[row], self.labels[row]


class RecycledMemory:
    """uint8 arrays for batches, each reused once nothing holds the last batch made from it.

    A fresh batch-sized allocation is often handed back to the system when freed and faulted
    in and zeroed anew for the next batch (1,176 page faults per 128x112x112x3 batch,
    measured); reusing the memory of a batch nobody holds avoids that. A handed-out batch is a
    view of the kept array; when the last tensor or array over the view dies, the array becomes
    a spare (at most ``keep`` spares are kept).
    """

    def __init__(self, keep: int = 2):
        self.keep = keep
        self.spares: list[np.ndarray] = []
        self._lock = threading.Lock()  # a batch may die in another thread (pin_memory's)

    def array(self, shape: tuple[int, ...]) -> np.ndarray:
        """An uninitialised uint8 array of ``shape``, a spare's memory when one fits."""
        shape = tuple(shape)
        with self._lock:
            fitting = [i for i, spare in enumerate(self.spares) if spare.shape == shape]
            memory = self.spares.pop(fitting[-1]) if fitting else None
        if memory is None:
            memory = np.empty(shape, dtype=np.uint8)
        handed = memory.view()
        weakref.finalize(handed, self._release, memory).atexit = False
        return handed

    def _release(self, memory: np.ndarray) -> None:
        with self._lock:
            self.spares.append(memory)
            if len(self.spares) > self.keep:
                del self.spares[0]


_MEMORY = RecycledMemory()


def batch_tensor(shape: tuple[int, ...]) -> torch.Tensor:
    """An uninitialised uint8 tensor: in a DataLoader worker in shared memory from the start,
    so handing it to the main process copies nothing (as the default collate does); in one
    process from memory of earlier batches nobody holds (:class:`RecycledMemory`)."""
    if get_worker_info() is None:
        return torch.from_numpy(_MEMORY.array(shape))
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


def collate_images(
    samples: Sequence[tuple[np.ndarray, int]],
) -> tuple[torch.Tensor, torch.Tensor]:
    """``[(uint8 (H, W, 3), label)]`` -> ``(uint8 (N, H, W, 3), int64 (N,))``.

    A :class:`RowBatch` hands its tensor on as it is (in a worker it is already in shared
    memory). Other samples are stacked: by the default collate in a DataLoader worker (into
    shared memory), by numpy elsewhere.
    """
    if isinstance(samples, RowBatch):
        return samples.batch, torch.tensor(samples.labels, dtype=torch.int64)
    labels = torch.tensor([label for _, label in samples], dtype=torch.int64)
    if get_worker_info() is not None:
        return default_collate(list(samples))
    return torch.from_numpy(np.stack([image for image, _ in samples])), labels
