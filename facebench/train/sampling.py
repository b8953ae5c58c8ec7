"""World-size-independent batches: which images each rank reads at each step, and their flips.

Epoch e visits the images in ``randperm(N)`` drawn from ``(seed, e)``. Step s of the epoch is the
global batch ``perm[s*B:(s+1)*B]``; it is cut into A micro-batches (gradient accumulation) and each
micro-batch into W equal parts, one per rank. So the images of a step and their flips depend only
on (seed, epoch, step), never on the number of processes, and a resumed run continues exactly.
"""

from __future__ import annotations

import torch

from facebench.errors import ConfigError


class GlobalBatchSampler:
    """A ``batch_sampler``: this rank's index list for each micro-batch, from a set position."""

    def __init__(
        self,
        num_samples: int,
        batch_size: int,
        accumulation: int,
        rank: int,
        world_size: int,
        seed: int,
    ):
        if batch_size % (accumulation * world_size):
            raise ConfigError(
                f"train.batch_size {batch_size} must be divisible by train.accumulation "
                f"{accumulation} x {world_size} processes"
            )
        if batch_size // (accumulation * world_size) < 2:
            raise ConfigError(
                f"train.batch_size {batch_size} / (train.accumulation {accumulation} x "
                f"{world_size} processes) leaves fewer than 2 images per micro-batch on each "
                "process; BatchNorm needs at least 2"
            )
        if num_samples < batch_size:
            raise ConfigError(
                f"train.batch_size {batch_size} is larger than the training set ({num_samples})"
            )
        self.num_samples = num_samples
        self.batch_size = batch_size
        self.accumulation = accumulation
        self.rank = rank
        self.world_size = world_size
        self.seed = seed
        self.steps_per_epoch = num_samples // batch_size
        self.micro = batch_size // accumulation
        self.per_rank = self.micro // world_size
        self.epoch = 0
        self.start_step = 0

    def set_position(self, epoch: int, step_in_epoch: int) -> None:
        """Start the next iteration at ``step_in_epoch`` of ``epoch``."""
        self.epoch, self.start_step = epoch, step_in_epoch

    def permutation(self, epoch: int) -> torch.Tensor:
        gen = torch.Generator().manual_seed(_seed(self.seed * 1_000_003 + epoch))
        return torch.randperm(self.num_samples, generator=gen)

    def __len__(self) -> int:
        return (self.steps_per_epoch - self.start_step) * self.accumulation

    def __iter__(self):
        perm = self.permutation(self.epoch)
        for step in range(self.start_step, self.steps_per_epoch):
            for micro in range(self.accumulation):
                start = step * self.batch_size + micro * self.micro + self.rank * self.per_rank
                yield perm[start : start + self.per_rank].tolist()

    def flips(self, epoch: int, step: int, micro: int) -> torch.Tensor:
        """Bool mask: which of this rank's images in that micro-batch are mirrored."""
        gen = torch.Generator().manual_seed(
            _seed((self.seed * 1_000_003 + epoch) * 1_000_033 + step)
        )
        mask = torch.rand(self.batch_size, generator=gen) < 0.5
        start = micro * self.micro + self.rank * self.per_rank
        return mask[start : start + self.per_rank]


def _seed(value: int) -> int:
    """A generator seed from a derived value: its low 64 bits (what torch accepts; the same
    value for every seed whose derived values fit, so those runs are unchanged)."""
    return value % 2**64
