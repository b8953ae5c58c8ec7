"""The one place pixels become model input: a uint8 NHWC batch -> the model's float NCHW tensor.

Workers and image sources hand over uint8 RGB batches (a quarter of the bytes of float32); the
conversion runs once per batch on the device the batch is on, for training, embedding and export
checks alike. The arithmetic is the float32 ``(x - mean) / std`` of each pixel, so the result
has the same bits as converting image by image.
"""

from __future__ import annotations

import torch

from facebench.data.images import InputConvention
from facebench.errors import DataError


def check_batch(batch: torch.Tensor, convention: InputConvention) -> None:
    """DataError unless ``batch`` is uint8 ``(N, H, W, 3)`` of the convention's size."""
    if batch.dtype != torch.uint8:
        raise DataError(f"expected uint8 images, got {batch.dtype}")
    if batch.ndim != 4 or batch.shape[-1] != 3:
        raise DataError(f"expected images of shape (N, H, W, 3), got {tuple(batch.shape)}")
    if tuple(batch.shape[1:3]) != tuple(convention.size):
        raise DataError(
            f"images are {batch.shape[1]}x{batch.shape[2]}, the model expects "
            f"{convention.size[0]}x{convention.size[1]}"
        )


def model_input(
    batch: torch.Tensor,
    convention: InputConvention,
    flip: torch.Tensor | None = None,
    channels_last: bool = False,
) -> torch.Tensor:
    """uint8 RGB ``(N, H, W, 3)`` -> float32 ``(N, 3, H, W)`` = ``(x - mean) / std`` in the
    convention's colour order, on the batch's device.

    ``flip`` (bool ``(N,)``) mirrors those images left-right first. The result is
    NCHW-contiguous, or channels_last when asked (the NHWC pixels read straight through, no
    transpose). Into one new float32 tensor: a casting copy, then subtract and divide in place,
    each rounding as the per-image path did (a single ``x * a + b`` would move last bits); the
    divisor is a device tensor so CUDA divides too (with a CPU scalar it multiplies by the
    reciprocal).
    """
    check_batch(batch, convention)
    if flip is not None:
        batch = torch.where(flip.to(batch.device).view(-1, 1, 1, 1), batch.flip(2), batch)
    if convention.color == "BGR":
        batch = batch.flip(3)
    n, height, width, channels = batch.shape
    layout = torch.channels_last if channels_last else torch.contiguous_format
    out = torch.empty(
        (n, channels, height, width), dtype=torch.float32, device=batch.device, memory_format=layout
    )
    out.copy_(batch.permute(0, 3, 1, 2))  # exact: every uint8 is a float32
    out.sub_(convention.mean)
    return out.div_(torch.tensor(convention.std, dtype=torch.float32, device=batch.device))
