"""Partial FC class sampling: keep the classes present in the batch, fill up with random others."""

from __future__ import annotations

import math

import torch


def num_sampled_classes(num_local: int, sample_ratio: float) -> int:
    """How many of a rank's ``num_local`` classes a step keeps: ceil(r * num_local), at least 1."""
    return max(1, min(num_local, math.ceil(sample_ratio * num_local)))


def sample_local_classes(
    local_positive: torch.Tensor, num_local: int, num_sample: int
) -> torch.Tensor:
    """Sorted local row indices of the classes one step uses.

    ``local_positive`` holds the local indices of classes present in the batch (repeats allowed);
    all of them are kept, plus classes drawn uniformly without replacement from the rest until
    ``num_sample`` rows are reached (more when the batch alone has more classes).
    """
    positive = torch.unique(local_positive)
    if positive.numel() >= num_sample:
        return positive
    priority = torch.rand(num_local, device=local_positive.device)
    priority[positive] = 2.0
    return priority.topk(num_sample, sorted=False).indices.sort().values
