"""Process set-up for `torchrun`: read RANK / WORLD_SIZE / LOCAL_RANK, start the process group.

Shared by training and embedding (both import it; it imports neither). Nothing happens at
import; :func:`setup` runs only when the trainer or the embedder asks. One process (no
torchrun, or WORLD_SIZE=1) needs no process group at all.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from facebench.errors import ConfigError


@dataclass
class DistContext:
    """Where this process sits: rank, world size, its device and the group (None alone)."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    group: object | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum over ranks, in place (identity for one process)."""
        if self.group is not None:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM, group=self.group)
        return tensor

    def barrier(self) -> None:
        if self.group is not None:
            dist.barrier(group=self.group)


def launched_by_torchrun() -> bool:
    """Whether torchrun's environment variables are present."""
    return all(k in os.environ for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))


def setup(device: str = "cpu") -> DistContext:
    """The context for this process; starts gloo (CPU) or nccl (CUDA) under a multi-process
    torchrun, and puts each process on ``cuda:LOCAL_RANK`` when ``device`` is CUDA."""
    base = torch.device(device)
    if base.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r}: CUDA is not available on this machine")
    if not launched_by_torchrun() or int(os.environ["WORLD_SIZE"]) == 1:
        return DistContext(0, 1, 0, base)
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ["LOCAL_RANK"])
    if base.type == "cuda":
        base = torch.device("cuda", local_rank)
        torch.cuda.set_device(base)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if base.type == "cuda" else "gloo")
    return DistContext(rank, world, local_rank, base, dist.group.WORLD)


def teardown(ctx: DistContext) -> None:
    """Close the process group this module started."""
    if ctx.group is not None and dist.is_initialized():
        dist.destroy_process_group()
