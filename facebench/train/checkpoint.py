"""Checkpoints that survive a change of world size, written atomically.

A checkpoint holds the backbone, the head's full (all classes) state, the optimizer state keyed
by parameter name with the head's per-row state (momentum, Adam moments) gathered over ranks
like the head's weights, the scheduler, the loss scaler, RNG states and the step. The step and
the recipe's seed fix the data position (see :mod:`facebench.train.sampling`).
:func:`save_training_state` and :func:`load_training_state` write and restore a trainer's.
"""

from __future__ import annotations

import logging
import os
import random
import re
from pathlib import Path

import numpy as np
import torch

from facebench.errors import ModelError
from facebench.fileio import atomic_file

FORMAT = "facebench-checkpoint-1"
#: Optimizer state entries shaped like their parameter (sharded with the head's rows).
PER_ELEMENT_STATE = ("momentum_buffer", "exp_avg", "exp_avg_sq", "max_exp_avg_sq")
_NAME = re.compile(r"^step_(\d+)\.pt$")

log = logging.getLogger(__name__)


def checkpoint_path(directory: str | os.PathLike, step: int) -> Path:
    return Path(directory) / f"step_{step:08d}.pt"


def save_checkpoint(path: str | os.PathLike, payload: dict) -> None:
    """``torch.save`` through :func:`facebench.fileio.atomic_file`."""
    with atomic_file(path) as f:
        torch.save({"format": FORMAT, **payload}, f)


def load_checkpoint(path: str | os.PathLike) -> dict:
    """A checkpoint written by :func:`save_checkpoint` (``weights_only`` loading)."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as exc:
        raise ModelError(f"{path}: checkpoint not found") from exc
    except Exception as exc:
        raise ModelError(f"{path}: not a readable checkpoint ({type(exc).__name__})") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ModelError(f"{path}: not a facebench checkpoint (expected format {FORMAT})")
    return payload


def latest_checkpoint(directory: str | os.PathLike) -> Path | None:
    """The checkpoint with the highest step in ``directory`` (None if there is none)."""
    found = _checkpoints(directory)
    return found[-1][1] if found else None


def prune_checkpoints(directory: str | os.PathLike, keep: int) -> None:
    """Delete all but the newest ``keep`` checkpoints."""
    for _, path in _checkpoints(directory)[:-keep]:
        path.unlink(missing_ok=True)


def _checkpoints(directory) -> list[tuple[int, Path]]:
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := _NAME.match(p.name))]
    return sorted(found)


def save_training_state(trainer) -> Path:
    """Write the trainer's ``checkpoints/step_N.pt`` (collective: every rank takes part, rank 0
    writes) and keep the newest ``train.keep_checkpoints``."""
    payload = {
        "step": trainer.step,
        "world_size": trainer.ctx.world_size,
        "recipe": trainer.recipe.to_dict(),
        "backbone": {k: v.cpu() for k, v in trainer.backbone.state_dict().items()},
        "head": full_head_state(trainer.head),
        "optimizer": optimizer_state(trainer.optimizer, trainer.backbone, trainer.head),
        "scheduler": trainer.scheduler.state_dict(),
        "scaler": trainer.scaler.state_dict(),
        "rng": rng_state(),
    }
    directory = trainer.run_dir / "checkpoints"
    path = checkpoint_path(directory, trainer.step)
    if trainer.ctx.is_main:
        save_checkpoint(path, payload)
        prune_checkpoints(directory, trainer.recipe.train.keep_checkpoints)
    trainer.ctx.barrier()
    return path


def load_training_state(trainer, path: Path) -> None:
    """Restore into ``trainer`` everything :func:`save_training_state` wrote, at its world
    size."""
    payload = load_checkpoint(path)
    try:
        trainer.backbone.load_state_dict(payload["backbone"])
        optim_state = payload["optimizer"]
        load_optimizer_state(trainer.optimizer, optim_state, trainer.backbone, trainer.head)
        load_full_head_state(trainer.head, payload["head"])
    except (RuntimeError, KeyError) as exc:
        raise ModelError(f"{path}: does not fit this recipe's model ({exc})") from exc
    trainer.scheduler.load_state_dict(payload["scheduler"])
    trainer.scaler.load_state_dict(payload["scaler"])
    set_rng_state(payload["rng"])
    trainer.step = int(payload["step"])
    log.info(
        "resumed %s at step %d (saved by %d process(es))",
        path,
        trainer.step,
        payload["world_size"],
    )


def optimizer_state(
    optimizer: torch.optim.Optimizer, backbone: torch.nn.Module, head: torch.nn.Module
) -> dict:
    """Optimizer state keyed ``backbone.<name>`` / ``head.<name>``; the head's per-element
    entries hold all classes (collective when the head is sharded)."""
    state = {
        f"backbone.{n}": {k: _cpu(v) for k, v in optimizer.state.get(p, {}).items()}
        for n, p in backbone.named_parameters()
        if optimizer.state.get(p)
    }
    head_params = dict(head.named_parameters())
    for n, p in head_params.items():
        kept = {k: _cpu(v) for k, v in optimizer.state.get(p, {}).items()}
        state[f"head.{n}"] = {k: v for k, v in kept.items() if k not in PER_ELEMENT_STATE}
    for key in _per_element_keys(optimizer, head_params.values()):
        full = _through_head(
            head,
            {
                n: optimizer.state.get(p, {}).get(key, torch.zeros_like(p))
                for n, p in head_params.items()
            },
        )
        for n in head_params:
            state[f"head.{n}"][key] = full[n]
    groups = [{k: v for k, v in g.items() if k != "params"} for g in optimizer.param_groups]
    return {"state": state, "groups": groups}


def load_optimizer_state(
    optimizer: torch.optim.Optimizer,
    saved: dict,
    backbone: torch.nn.Module,
    head: torch.nn.Module,
) -> None:
    """Inverse of :func:`optimizer_state` at any world size (slices the head's rows again).

    Loads the head's weights as a side effect: call it before loading the head's own state.
    """
    if len(saved["groups"]) != len(optimizer.param_groups):
        raise ModelError(
            f"checkpoint has {len(saved['groups'])} optimizer groups, the run has "
            f"{len(optimizer.param_groups)} (different optimizer or head?)"
        )
    for group, hyper in zip(optimizer.param_groups, saved["groups"], strict=True):
        group.update(hyper)
    state = saved["state"]
    for n, p in backbone.named_parameters():
        if f"backbone.{n}" in state:
            optimizer.state[p] = _to_param(state[f"backbone.{n}"], p)
    head_params = dict(head.named_parameters())
    for n, p in head_params.items():
        entries = state.get(f"head.{n}", {})
        optimizer.state[p] = _to_param(
            {k: v for k, v in entries.items() if k not in PER_ELEMENT_STATE}, p
        )
        if not optimizer.state[p]:
            del optimizer.state[p]
    keys = sorted({k for n in head_params for k in state.get(f"head.{n}", {})})
    for key in (k for k in keys if k in PER_ELEMENT_STATE):
        load_full_head_state(head, {n: state[f"head.{n}"][key] for n in head_params})
        for p in head_params.values():
            optimizer.state[p][key] = p.detach().clone()


def rng_state() -> dict:
    """Python, NumPy and torch (CPU and CUDA) generator states, in tensors and plain types."""
    np_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Inverse of :func:`rng_state`."""
    random.setstate(_tuples(state["python"]))
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        # a run saved on more GPUs than this machine has restores the devices present
        for index, cuda_state in enumerate(state["cuda"][: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(cuda_state, index)


def _per_element_keys(optimizer, params) -> list[str]:
    found = {k for p in params for k in optimizer.state.get(p, {}) if k in PER_ELEMENT_STATE}
    return sorted(found)


def _through_head(head: torch.nn.Module, values: dict[str, torch.Tensor]) -> dict:
    """Gather per-row tensors shaped like the head's (local) parameters into all classes, with
    the head's own ``full_state_dict`` (so the split rule lives in one place)."""
    params = dict(head.named_parameters())
    with torch.no_grad():
        saved = {n: p.detach().clone() for n, p in params.items()}
        for n, p in params.items():
            p.copy_(values[n])
        full = full_head_state(head)
        for n, p in params.items():
            p.copy_(saved[n])
    return full


def load_full_head_state(head: torch.nn.Module, full: dict[str, torch.Tensor]) -> None:
    """Load a :func:`full_head_state` into a head of any world size."""
    if hasattr(head, "load_full_state_dict"):
        head.load_full_state_dict(full)
    else:
        head.load_state_dict(full)


def full_head_state(head: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The head's world-size-independent state (its plain state dict if it is not sharded)."""
    state = head.full_state_dict() if hasattr(head, "full_state_dict") else head.state_dict()
    return {k: v.detach().cpu().clone() for k, v in state.items()}  # never alias the parameters


def _cpu(value):
    return value.detach().cpu().clone() if torch.is_tensor(value) else value


def _to_param(entries: dict, p: torch.Tensor) -> dict:
    """Optimizer entries onto the parameter's device (Adam's scalar ``step`` stays on CPU)."""
    out = {}
    for k, v in entries.items():
        out[k] = v.to(p.device) if torch.is_tensor(v) and k != "step" else v
    return out


def _tuples(value):
    """``random.setstate`` wants tuples; a checkpoint may hand back lists."""
    return tuple(_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value
