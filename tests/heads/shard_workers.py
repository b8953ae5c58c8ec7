"""Worker processes for the sharded-head tests: gloo ranks on 127.0.0.1, results saved to disk."""

from __future__ import annotations

import socket
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel

from facebench.errors import ModelError
from facebench.heads import build_head, compensate_ddp_averaging


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_ranks(world_size: int, worker, *args) -> None:
    """Run ``worker(rank, world_size, *args)`` in ``world_size`` gloo processes and wait."""
    mp.spawn(_entry, args=(world_size, free_port(), worker, args), nprocs=world_size, join=True)


def _entry(rank, world_size, port, worker, args):
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size
    )
    try:
        worker(rank, world_size, *args)
    finally:
        dist.destroy_process_group()


def sharded_head(case: dict, name: str, state: dict, group, **extra):
    """The float64 head for ``name`` sharded over ``group``, holding the full ``state``."""
    params = {**case["params"][name], **extra}
    head = build_head(name, case["dim"], case["num_classes"], process_group=group, **params)
    head = head.double()
    head.load_full_state_dict(state)
    return head


def local_rows(tensor: torch.Tensor, group) -> torch.Tensor:
    """This rank's equal share of the global batch."""
    return tensor.chunk(dist.get_world_size(group))[dist.get_rank(group)]


def four_rank_worker(rank, world_size, case_path, out_dir):
    """Ranks 0-1 check every head sharded over 2 and write its state; then all 4 ranks load it."""
    out_dir = Path(out_dir)
    pair = dist.new_group([0, 1])
    if rank < 2:
        results = two_rank_checks(torch.load(case_path, weights_only=False), pair)
        torch.save(results, out_dir / f"pair{rank}.pt")
        if rank == 0:
            states = {name: results[name]["state"] for name in results["names"]}
            torch.save(states, out_dir / "states_from_2.pt")
    dist.barrier()
    case = torch.load(case_path, weights_only=False)
    states = torch.load(out_dir / "states_from_2.pt", weights_only=False)
    group = dist.group.WORLD
    results = {}
    for name in case["params"]:
        head = sharded_head(case, name, states[name], group)
        xs = local_rows(case["x"], group).clone().requires_grad_(True)
        loss = head(xs, local_rows(case["y"], group))
        loss.backward()
        results[name] = {"loss": loss.detach(), "x_grad": xs.grad, "state": head.full_state_dict()}
    torch.save(results, out_dir / f"four{rank}.pt")


def two_rank_checks(case, group) -> dict:
    """Loss and gradients of every sharded head, a sampled step, a DDP backbone step, a state
    dict, scores and thresholds, and the error for unequal batches."""
    rank = dist.get_rank(group)
    x_local, y_local = local_rows(case["x"], group), local_rows(case["y"], group)
    results = {"names": list(case["params"])}
    for name in case["params"]:
        head = sharded_head(case, name, case["states"][name], group)
        xs = x_local.clone().requires_grad_(True)
        loss = head(xs, y_local)
        loss.backward()
        torch.manual_seed(100 + rank)
        sampled = sharded_head(case, name, case["states"][name], group, sample_ratio=0.5)
        sampled_loss = sampled(x_local, y_local)
        results[name] = {
            "loss": loss.detach(),
            "x_grad": xs.grad,
            "grads": {n: p.grad.clone() for n, p in head.named_parameters()},
            "class_start": head.class_start,
            "scores": head.scores(x_local),
            "threshold": head.decision_threshold(),
            "state": head.full_state_dict(),
            "sampled_loss": sampled_loss.detach(),
            "sampled_classes": sampled.sampled_classes,
        }

    backbone = torch.nn.Linear(case["images"].shape[1], case["dim"]).double()
    backbone.load_state_dict(case["backbone"])
    ddp = DistributedDataParallel(backbone, process_group=group)
    head = sharded_head(case, "bce_u", case["states"]["bce_u"], group)
    embeddings = ddp(local_rows(case["images"], group))
    head(compensate_ddp_averaging(embeddings, group), y_local).backward()
    results["ddp_backbone_grads"] = {n: p.grad.clone() for n, p in backbone.named_parameters()}
    results["ddp_bias_grad"] = head.bias.grad.clone()

    rows = 3 if rank == 0 else 4
    results["unequal_batch_error"] = error_of(head, case["x"][:rows], case["y"][:rows])
    labels = y_local.clone()
    labels[1] = 7 if rank == 1 else labels[1]
    results["bad_label_error"] = error_of(head, x_local, labels)
    return results


def error_of(head, embeddings, labels) -> str | None:
    """The ModelError message of one forward, or None."""
    try:
        head(embeddings, labels)
    except ModelError as error:
        return str(error)
    return None
