"""Collectives for class-sharded heads: class slices, autograd all-gather, shared-value sums.

Every function takes an optional process group; with ``None`` (one process) they are identities,
so single-process and sharded heads run the same code.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from facebench.errors import ModelError


def group_rank_and_size(process_group) -> tuple[int, int]:
    """(rank, world size) of this process in ``process_group``; (0, 1) for ``None``."""
    if process_group is None:
        return 0, 1
    return dist.get_rank(process_group), dist.get_world_size(process_group)


def class_slice(num_classes: int, world_size: int, rank: int) -> tuple[int, int]:
    """(first class, number of classes) owned by ``rank``: contiguous, the first K % W ranks
    get one extra class, so slice sizes differ by at most one."""
    if num_classes < world_size:
        raise ModelError(f"num_classes {num_classes} is smaller than the world size {world_size}")
    base, extra = divmod(num_classes, world_size)
    start = rank * base + min(rank, extra)
    return start, base + (1 if rank < extra else 0)


class _AllGatherWithGrad(torch.autograd.Function):
    """Concatenate equal-sized chunks from every rank; the gradient of each chunk is the sum of
    the gradients every rank computed for it (all-reduce, then keep this rank's chunk)."""

    @staticmethod
    def forward(ctx, tensor, process_group):
        ctx.process_group = process_group
        ctx.rank, world = group_rank_and_size(process_group)
        chunks = [torch.empty_like(tensor) for _ in range(world)]
        dist.all_gather(chunks, tensor.contiguous(), group=process_group)
        return torch.cat(chunks, dim=0)

    @staticmethod
    def backward(ctx, grad_output):
        grad = grad_output.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM, group=ctx.process_group)
        return grad.chunk(dist.get_world_size(ctx.process_group), dim=0)[ctx.rank], None


def all_gather_with_grad(tensor: torch.Tensor, process_group) -> torch.Tensor:
    """Rows of every rank stacked in rank order, differentiable; every rank must pass the same
    number of rows (see :func:`check_ranks_agree`)."""
    if process_group is None:
        return tensor
    return _AllGatherWithGrad.apply(tensor, process_group)


def all_gather_rows(tensor: torch.Tensor, process_group) -> torch.Tensor:
    """Rows of every rank stacked in rank order, without gradient (rows may differ by rank)."""
    if process_group is None:
        return tensor
    world = dist.get_world_size(process_group)
    counts = gather_row_counts(tensor.shape[0], tensor.device, process_group)
    padded = tensor.new_zeros((max(counts), *tensor.shape[1:]))
    padded[: tensor.shape[0]] = tensor
    chunks = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(chunks, padded.contiguous(), group=process_group)
    return torch.cat([c[:n] for c, n in zip(chunks, counts, strict=True)], dim=0)


def gather_row_counts(rows: int, device, process_group) -> list[int]:
    """Row count of every rank, in rank order ([rows] without a group)."""
    if process_group is None:
        return [rows]
    world = dist.get_world_size(process_group)
    mine = torch.tensor([rows], device=device)
    counts = [torch.empty_like(mine) for _ in range(world)]
    dist.all_gather(counts, mine, group=process_group)
    return [int(c.item()) for c in counts]


def check_ranks_agree(rows: int, problem: str | None, device, process_group) -> None:
    """Raise ModelError on every rank when any rank found bad input (``problem``) or the ranks'
    batch sizes differ, so no rank is left waiting in a collective; one all-reduce."""
    if process_group is None:
        if problem is not None:
            raise ModelError(problem)
        return
    state = torch.tensor([rows, -rows, problem is not None], device=device)
    dist.all_reduce(state, op=dist.ReduceOp.MAX, group=process_group)
    if problem is not None:
        raise ModelError(problem)
    if state[2].item():
        raise ModelError("another rank rejected its input to the sharded head (see its error)")
    if state[0].item() != -state[1].item():
        raise ModelError(
            f"sharded head needs the same batch size on every rank, got {rows} here and sizes "
            f"from {-state[1].item()} to {state[0].item()} across ranks"
        )


class _SumOfShares(torch.autograd.Function):
    """Forward: sum of every rank's share. Backward: the identity, because every rank computes
    the same total from it and backpropagates that one total into its own share only."""

    @staticmethod
    def forward(ctx, tensor, process_group):
        total = tensor.clone()
        dist.all_reduce(total, op=dist.ReduceOp.SUM, group=process_group)
        return total

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output, None


def sum_of_shares(tensor: torch.Tensor, process_group) -> torch.Tensor:
    """Total over ranks of per-rank partial sums (e.g. exp-sums over a class slice), with the
    gradient of the one global value flowing back into each rank's own share."""
    if process_group is None:
        return tensor
    return _SumOfShares.apply(tensor, process_group)


class _ReplicatedInput(torch.autograd.Function):
    """Forward: the identity. Backward: sum the gradient over ranks, for a value every rank holds
    a copy of (a unified bias) but uses only with its own class slice."""

    @staticmethod
    def forward(ctx, tensor, process_group):
        ctx.process_group = process_group
        return tensor.view_as(tensor)

    @staticmethod
    def backward(ctx, grad_output):
        grad = grad_output.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM, group=ctx.process_group)
        return grad, None


def replicated_input(tensor: torch.Tensor, process_group) -> torch.Tensor:
    """Mark a replicated parameter so each rank receives the full gradient (summed over ranks)."""
    if process_group is None:
        return tensor
    return _ReplicatedInput.apply(tensor, process_group)


def all_reduce_max(tensor: torch.Tensor, process_group) -> torch.Tensor:
    """Elementwise maximum over ranks, without gradient (the log-sum-exp shift)."""
    if process_group is None:
        return tensor
    result = tensor.detach().clone()
    dist.all_reduce(result, op=dist.ReduceOp.MAX, group=process_group)
    return result


class _ScaleGradient(torch.autograd.Function):
    """Forward: the identity. Backward: multiply the gradient by a constant."""

    @staticmethod
    def forward(ctx, tensor, factor):
        ctx.factor = factor
        return tensor.view_as(tensor)

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output * ctx.factor, None


def compensate_ddp_averaging(embeddings: torch.Tensor, process_group) -> torch.Tensor:
    """Multiply the backbone's gradient by the world size, so that DDP's gradient averaging
    yields the gradient of the sharded head's global-batch loss (see docs/heads.md)."""
    _, world = group_rank_and_size(process_group)
    if world == 1:
        return embeddings
    return _ScaleGradient.apply(embeddings, float(world))
