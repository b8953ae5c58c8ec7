"""The model artifact (``model.pt``): everything needed to embed with a trained model, no recipe.

A plain dict saved with ``torch.save`` and read with ``torch.load(weights_only=True)``: backbone
name and keyword arguments, weights, embedding size, input convention, metadata (learned
threshold, recipe name, ...) and optionally the head's world-size-independent state.
"""

from __future__ import annotations

import numbers
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from facebench import schema
from facebench.data.images import InputConvention
from facebench.errors import FacebenchError, ModelError
from facebench.fileio import atomic_file
from facebench.models.registry import build_backbone

FORMAT = "facebench-model"
FORMAT_VERSION = 1
HEAD_KEYS = ("name", "embedding_size", "num_classes", "params", "state_dict")
_REQUIRED = ("backbone", "backbone_kwargs", "embedding_size", "state_dict", "convention")


def save_model_artifact(
    path: str | os.PathLike,
    backbone: nn.Module,
    name: str,
    kwargs: dict,
    convention: InputConvention,
    metadata: dict | None = None,
    head: dict | None = None,
) -> Path:
    """Write ``backbone`` (built as ``build_backbone(name, **kwargs)``) to ``path`` atomically."""
    path = Path(path)
    if isinstance(backbone, DistributedDataParallel):
        backbone = backbone.module
    kwargs = dict(kwargs)
    embedding_size = kwargs.pop("embedding_size", None)
    measured = _embedding_size(backbone, convention)
    if embedding_size is not None and embedding_size != measured:
        raise ModelError(
            f"{path}: kwargs say embedding_size={embedding_size}, the backbone gives {measured}"
        )
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "backbone": name,
        "backbone_kwargs": _plain(kwargs, f"{path}: backbone kwargs"),
        "embedding_size": measured,
        "state_dict": _cpu_state(backbone.state_dict()),
        "convention": convention.to_dict(),
        "metadata": _plain(dict(metadata or {}), f"{path}: metadata"),
        "head": None if head is None else _head_payload(head, path),
    }
    with atomic_file(path) as f:
        torch.save(payload, f)
    return path


def save_model(
    path: str | os.PathLike,
    recipe,
    backbone: nn.Module,
    head: nn.Module,
    convention: InputConvention,
    *,
    num_classes: int,
    steps: int,
    write: bool = True,
) -> Path | None:
    """A training run's ``model.pt``: the backbone, input convention, learned threshold and (when
    ``recipe.output.save_head``) the head's full state, loadable without the recipe. Collective
    under torchrun: every process calls it, only where ``write`` is one written (its path
    returned; None elsewhere). ``recipe`` is the run's :class:`facebench.config.Recipe`."""
    head_state = None
    if recipe.output.save_head:
        spec = dict(getattr(head, "spec", {}))
        head_state = {
            "name": recipe.head.name,
            "embedding_size": recipe.model.embedding_size,
            "num_classes": num_classes,
            "params": spec.get("params", dict(recipe.head.params)),
            "state_dict": head.full_state_dict(),
        }
    threshold = head.decision_threshold()
    if not write:
        return None
    backbone.eval()
    kwargs = {"embedding_size": recipe.model.embedding_size, **recipe.model.options}
    metadata = {
        "recipe": recipe.name,
        "head": recipe.head.name,
        schema.LEARNED_THRESHOLD: None if threshold is None else threshold.value,
        schema.LEARNED_THRESHOLD_UNITS: None if threshold is None else threshold.units,
        "steps": steps,
        "num_classes": num_classes,
    }
    return save_model_artifact(
        path,
        backbone,
        recipe.model.backbone,
        kwargs,
        convention,
        metadata=metadata,
        head=head_state,
    )


def read_artifact(path: str | os.PathLike) -> dict:
    """The validated payload of a model artifact (tensors on CPU); ModelError if it is not one."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: model artifact not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for truncated or foreign files
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{path}: not a readable model artifact ({reason})") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ModelError(f"{path}: not a facebench model artifact (no '{FORMAT}' format tag)")
    if payload.get("format_version") != FORMAT_VERSION:
        version = payload.get("format_version")
        raise ModelError(f"{path}: artifact format version {version!r}, expected {FORMAT_VERSION}")
    for key in _REQUIRED:
        if key not in payload:
            raise ModelError(f"{path}: model artifact has no {key!r} entry")
    return payload


def load_model_artifact(path: str | os.PathLike, device: str = "cpu") -> tuple[nn.Module, dict]:
    """Rebuild the backbone of ``path`` in eval mode on ``device``; return it and an info dict.

    info: ``name``, ``kwargs``, ``embedding_size``, ``convention`` (InputConvention),
    ``metadata``, ``has_head``, ``path``.
    """
    payload = read_artifact(path)
    try:
        convention = InputConvention.from_dict(payload["convention"])
        module = build_backbone(
            payload["backbone"], payload["embedding_size"], **payload["backbone_kwargs"]
        )
        module.load_state_dict(payload["state_dict"])
    except (FacebenchError, RuntimeError, KeyError, TypeError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0]
        raise ModelError(
            f"{path}: cannot rebuild backbone {payload['backbone']!r} ({reason})"
        ) from exc
    info = {
        "name": payload["backbone"],
        "kwargs": dict(payload["backbone_kwargs"]),
        "embedding_size": int(payload["embedding_size"]),
        "convention": convention,
        "metadata": dict(payload.get("metadata") or {}),
        "has_head": payload.get("head") is not None,
        "path": str(path),
    }
    return module.to(device).eval(), info


def load_head_from_artifact(path: str | os.PathLike, device: str = "cpu") -> nn.Module | None:
    """Rebuild the head stored in ``path`` with ``build_head`` (eval mode); None if it has none."""
    from facebench.heads import build_head

    head_state = read_artifact(path).get("head")
    if head_state is None:
        return None
    try:
        head = build_head(
            head_state["name"],
            head_state["embedding_size"],
            head_state["num_classes"],
            **head_state["params"],
        )
        loader = getattr(head, "load_full_state_dict", head.load_state_dict)
        loader(head_state["state_dict"])
    except (FacebenchError, RuntimeError, KeyError, TypeError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0]
        raise ModelError(
            f"{path}: cannot rebuild head {head_state.get('name')!r} ({reason})"
        ) from exc
    return head.to(device).eval()


def _embedding_size(backbone: nn.Module, convention: InputConvention) -> int:
    """Run one blank image of the convention's size through ``backbone``; its output width."""
    was_training = backbone.training
    param = next(backbone.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    try:
        backbone.eval()
        with torch.no_grad():
            out = backbone(torch.zeros(1, 3, *convention.size, device=device))
    except RuntimeError as exc:
        reason = str(exc).strip().splitlines()[0]
        raise ModelError(f"backbone does not take {convention.size} input ({reason})") from exc
    finally:
        backbone.train(was_training)
    if out.ndim != 2:
        raise ModelError(f"backbone output has shape {tuple(out.shape)}, expected (N, d)")
    return int(out.shape[1])


def _cpu_state(state: dict) -> dict:
    return {k: v.detach().to("cpu").contiguous() for k, v in state.items()}


def _head_payload(head: dict, path: Path) -> dict:
    missing = [k for k in HEAD_KEYS if k not in head]
    if missing:
        raise ModelError(f"{path}: head dict lacks {', '.join(missing)}")
    return {
        "name": str(head["name"]),
        "embedding_size": int(head["embedding_size"]),
        "num_classes": int(head["num_classes"]),
        "params": _plain(dict(head["params"]), f"{path}: head params"),
        "state_dict": _cpu_state(head["state_dict"]),
    }


def _plain(value, where: str):
    """``value`` with NumPy scalars/arrays turned into Python ones, so weights_only loads it."""
    if isinstance(value, dict):
        return {str(k): _plain(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, where) for v in value]
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu")
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (str, bool, numbers.Number)):
        return value
    raise ModelError(f"{where}: cannot store a value of type {type(value).__name__}")
