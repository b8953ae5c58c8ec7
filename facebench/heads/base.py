"""Machinery every head shares: this rank's class rows, the bias, input checks, the all-gather,
Partial FC sampling, margin-adjusted logits, scores, optimizer groups and world-size-free state."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from facebench.errors import ConfigError, ModelError
from facebench.heads.distributed import (
    all_gather_rows,
    all_gather_with_grad,
    check_ranks_agree,
    class_slice,
    gather_row_counts,
    group_rank_and_size,
    replicated_input,
)
from facebench.heads.sampling import num_sampled_classes, sample_local_classes

DEFAULT_SCALE = 64.0
WEIGHT_INIT_STD = 0.01
NORM_EPS = 1e-12  # as F.normalize: vectors shorter than this are divided by it instead
BIAS_MODES = ("none", "class", "unified")


@dataclass(frozen=True)
class DecisionThreshold:
    """A head's one learned decision threshold: a class score above ``value`` means "this
    class". ``units``: "cosine" for normalized heads, "w.x" for linear ones."""

    value: float
    units: str


def default_bias_init(num_classes: int) -> float:
    """UniFace's initial bias log(10 K): the K - 1 negative terms then start near e^{-b} K = 0.1."""
    return math.log(10.0 * num_classes)


def _config_float(name: str, value, *, positive: bool = False) -> float:
    """``value`` as a finite float, or ConfigError naming the parameter."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"head parameter {name}={value!r} is not a number") from None
    if not math.isfinite(number) or (positive and number <= 0):
        kind = "a positive finite number" if positive else "finite"
        raise ConfigError(f"head parameter {name}={value!r} must be {kind}")
    return number


def _config_count(name: str, value) -> int:
    """``value`` as a positive int, or ConfigError naming the parameter."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"head parameter {name}={value!r} must be a positive integer")
    return value


class ClassifierHead(nn.Module):
    """A classifier over K classes whose loss subclasses define from margin-adjusted logits.

    Rank i of ``process_group`` holds the rows of a contiguous class slice (all K without a
    group). Scores are s_k = γ cos θ_k − b_k (normalized) or w_k·x − b_k (linear, γ = 1);
    ``bias_init=None`` means log(10 K).
    """

    def __init__(
        self,
        embedding_size: int,
        num_classes: int,
        *,
        normalized: bool,
        scale: float | None,
        margin: float,
        bias_mode: str,
        bias_init: float | None,
        bias_weight_decay: bool,
        sample_ratio: float,
        process_group,
    ):
        super().__init__()
        self.embedding_size = _config_count("embedding_size", embedding_size)
        self.num_classes = _config_count("num_classes", num_classes)
        if not isinstance(normalized, bool):
            raise ConfigError(f"head parameter normalized={normalized!r} must be true or false")
        if not normalized and scale is not None:
            raise ConfigError(f"head parameter scale={scale!r} applies only to normalized=True")
        self.normalized = normalized
        scale = DEFAULT_SCALE if scale is None else scale
        self.scale = _config_float("scale", scale, positive=True) if normalized else 1.0
        self.margin = _config_float("margin", margin)
        if self.margin != 0 and not normalized:
            raise ConfigError(f"head parameter margin={margin!r} needs normalized=True")
        self.sample_ratio = _config_float("sample_ratio", sample_ratio, positive=True)
        if self.sample_ratio > 1:
            raise ConfigError(f"head parameter sample_ratio={sample_ratio!r} must be in (0, 1]")
        if not isinstance(bias_weight_decay, bool):
            raise ConfigError(
                f"head parameter bias_weight_decay={bias_weight_decay!r} must be true or false"
            )
        self.bias_weight_decay = bias_weight_decay
        if bias_mode not in BIAS_MODES:
            raise ConfigError(f"bias mode {bias_mode!r} is not one of {BIAS_MODES}")
        self.bias_mode = bias_mode

        self.process_group = process_group
        self.rank, self.world_size = group_rank_and_size(process_group)
        self.class_start, self.num_local = class_slice(self.num_classes, self.world_size, self.rank)
        weight = torch.empty(self.num_local, self.embedding_size)
        self.weight = nn.Parameter(weight.normal_(0.0, WEIGHT_INIT_STD))
        if bias_init is None:
            bias_init = default_bias_init(self.num_classes)
        bias_value = _config_float("bias_init", bias_init)
        if bias_mode == "class":
            self.bias = nn.Parameter(torch.full((self.num_local,), bias_value))
        elif bias_mode == "unified":
            self.bias = nn.Parameter(torch.tensor(bias_value))
        else:
            self.register_parameter("bias", None)
        self.sampled_classes: torch.Tensor | None = None

    # ---- what subclasses define -------------------------------------------------------------
    def positive_value(self, values: torch.Tensor) -> torch.Tensor:
        """The target class's cosine after the margin: the cosine margin cos θ_y − m by default."""
        return values - self.margin

    def per_sample_loss(
        self, logits: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor
    ) -> torch.Tensor:
        """(N,) global per-sample losses from this rank's logits (which it may overwrite);
        (rows, cols) locate the targets."""
        raise NotImplementedError

    # ---- forward ------------------------------------------------------------------------------
    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Mean loss over the (global) batch, in float32 or wider whatever the autocast state."""
        self._check_inputs(embeddings, labels)
        with torch.autocast(device_type=embeddings.device.type, enabled=False):
            dtype = torch.promote_types(embeddings.dtype, torch.float32)
            x = all_gather_with_grad(embeddings.to(dtype), self.process_group)
            y = all_gather_rows(labels.to(device=x.device, dtype=torch.long), self.process_group)
            local_rows, target = self._select_classes(y)
            weight = self.weight if local_rows is None else self.weight.index_select(0, local_rows)
            values = self._class_values(x, weight.to(dtype))
            rows = torch.nonzero(target >= 0).squeeze(1)
            cols = target[rows]
            positive = self.scale * self.positive_value(values[rows, cols])
            # In place from here: (N, C) is the big tensor, and no backward needs these values.
            logits = values.mul_(self.scale) if self.scale != 1.0 else values
            bias = self._bias(local_rows)
            if bias is not None:
                bias = bias.to(dtype)
                logits.sub_(bias)
                positive = positive - (bias if bias.dim() == 0 else bias[cols])
            logits.index_put_((rows, cols), positive)
            return self.per_sample_loss(logits, rows, cols).mean()

    def _class_values(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """(N, C) cosines (normalized) or dot products (linear) against ``weight`` rows.

        Cosines divide the (N, C) products by the row norms instead of normalizing the (C, d)
        weight: no weight-sized copy, and less work whenever N < d."""
        if self.normalized:
            row_norms = torch.linalg.vector_norm(weight, dim=1).clamp_min(NORM_EPS)
            return (F.normalize(x, dim=1, eps=NORM_EPS) @ weight.t()) / row_norms
        return x @ weight.t()

    def _bias(self, local_rows: torch.Tensor | None) -> torch.Tensor | None:
        """The bias of the classes in use: per-class rows follow the sampled weight rows."""
        if self.bias is None:
            return None
        if self.bias_mode == "unified":
            return replicated_input(self.bias, self.process_group)
        return self.bias if local_rows is None else self.bias.index_select(0, local_rows)

    def _select_classes(self, labels: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
        """(local rows used this step or None for all, target column per sample or -1).

        Partial FC samples only in training mode with sample_ratio < 1.
        """
        local = labels - self.class_start
        in_slice = (local >= 0) & (local < self.num_local)
        if not (self.training and self.sample_ratio < 1):
            self.sampled_classes = None
            return None, torch.where(in_slice, local, -1)
        num_sample = num_sampled_classes(self.num_local, self.sample_ratio)
        local_rows = sample_local_classes(local[in_slice], self.num_local, num_sample)
        column = torch.full((self.num_local,), -1, dtype=torch.long, device=labels.device)
        column[local_rows] = torch.arange(local_rows.numel(), device=labels.device)
        target = torch.where(in_slice, column[local.clamp(0, self.num_local - 1)], -1)
        self.sampled_classes = local_rows + self.class_start
        return local_rows, target

    # ---- checks -------------------------------------------------------------------------------
    def _check_inputs(self, embeddings, labels) -> None:
        """ModelError for bad embeddings or labels, raised on every rank of a sharded head."""
        if not isinstance(embeddings, torch.Tensor):
            raise ModelError(f"head expects a tensor of embeddings, got {type(embeddings)}")
        problem = None
        try:
            self._check_embeddings(embeddings)
            if labels is not None:
                self._check_labels(labels, embeddings.shape[0])
        except ModelError as error:
            problem = str(error)
        check_ranks_agree(embeddings.shape[0], problem, embeddings.device, self.process_group)

    def _check_embeddings(self, embeddings) -> None:
        """ModelError for anything but a finite float (N, embedding_size) tensor with N > 0."""
        if not isinstance(embeddings, torch.Tensor) or not embeddings.is_floating_point():
            raise ModelError(f"head expects a float tensor of embeddings, got {type(embeddings)}")
        if embeddings.dim() != 2 or embeddings.shape[1] != self.embedding_size:
            raise ModelError(
                f"head expects embeddings of shape (N, {self.embedding_size}), "
                f"got {tuple(embeddings.shape)}"
            )
        if embeddings.shape[0] == 0:
            raise ModelError("head got an empty batch of embeddings")
        finite_rows = torch.isfinite(embeddings.detach()).all(dim=1)
        if not bool(finite_rows.all()):
            row = int(torch.nonzero(~finite_rows)[0])
            bad = embeddings[row][~torch.isfinite(embeddings[row])][0].item()
            raise ModelError(f"embedding row {row} holds a non-finite value ({bad})")

    def _check_labels(self, labels, batch_size: int) -> None:
        """ModelError for labels that are not (N,) integers in [0, num_classes)."""
        if (
            not isinstance(labels, torch.Tensor)
            or labels.is_floating_point()
            or (labels.dtype in (torch.bool, torch.complex64, torch.complex128))
        ):
            kind = labels.dtype if isinstance(labels, torch.Tensor) else type(labels)
            raise ModelError(f"head expects integer class labels, got {kind}")
        if labels.shape != (batch_size,):
            raise ModelError(
                f"head expects labels of shape ({batch_size},), got {tuple(labels.shape)}"
            )
        bad = (labels < 0) | (labels >= self.num_classes)
        if bool(bad.any()):
            index = int(torch.nonzero(bad)[0])
            raise ModelError(
                f"label {int(labels[index])} at index {index} is out of range "
                f"[0, {self.num_classes})"
            )

    # ---- scores, threshold, optimizer groups, state ---------------------------------------------
    @torch.no_grad()
    def scores(self, embeddings: torch.Tensor) -> torch.Tensor:
        """(N, K) class scores s_k (bias included, no margin) in float32 or wider.

        Sharded: collective; each rank passes its own rows and gets them scored against all K.
        """
        self._check_inputs(embeddings, None)
        with torch.autocast(device_type=embeddings.device.type, enabled=False):
            dtype = torch.promote_types(embeddings.dtype, torch.float32)
            x = all_gather_rows(embeddings.to(dtype), self.process_group)
            local = self.scale * self._class_values(x, self.weight.to(dtype))
            if self.bias is not None:
                local = local - self.bias.to(dtype)
            full = all_gather_rows(local.t().contiguous(), self.process_group).t()
        counts = gather_row_counts(embeddings.shape[0], embeddings.device, self.process_group)
        start = sum(counts[: self.rank])
        return full[start : start + embeddings.shape[0]]

    def decision_threshold(self) -> DecisionThreshold | None:
        """The single threshold this head learned, or None where it has none.

        A unified bias b is one: s = γ cos θ − b > 0 iff cos θ > b/γ (b for the linear form).
        Per-class biases (SoftMax, bce_d) are K thresholds, not one; no bias, no threshold."""
        if self.bias_mode != "unified":
            return None
        units = "cosine" if self.normalized else "w.x"
        return DecisionThreshold(float(self.bias.detach()) / self.scale, units)

    def param_groups(self, weight_decay: float) -> list[dict]:
        """Optimizer parameter groups: weight decay on the class weights always, on the bias only
        when ``bias_weight_decay``."""
        groups = [{"params": [self.weight], "weight_decay": weight_decay}]
        if self.bias is not None:
            decay = weight_decay if self.bias_weight_decay else 0.0
            groups.append({"params": [self.bias], "weight_decay": decay})
        return groups

    def full_state_dict(self) -> dict[str, torch.Tensor]:
        """All K rows on CPU whatever the world size (collective when sharded)."""
        state = {"weight": all_gather_rows(self.weight.detach(), self.process_group).cpu()}
        if self.bias is not None:
            bias = self.bias.detach()
            if self.bias_mode == "class":
                bias = all_gather_rows(bias, self.process_group)
            state["bias"] = bias.cpu().clone()
        return state

    def load_full_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Load a :meth:`full_state_dict` written at any world size; keep this rank's slice."""
        expected = {"weight"} | ({"bias"} if self.bias is not None else set())
        if set(state) != expected:
            raise ModelError(f"head state has keys {sorted(state)}, expected {sorted(expected)}")
        shapes = {"weight": (self.num_classes, self.embedding_size)}
        if self.bias is not None:
            shapes["bias"] = (self.num_classes,) if self.bias_mode == "class" else ()
        for key, shape in shapes.items():
            if tuple(state[key].shape) != shape:
                raise ModelError(
                    f"head state {key!r} has shape {tuple(state[key].shape)}, expected {shape}"
                )
        end = self.class_start + self.num_local
        with torch.no_grad():
            self.weight.copy_(state["weight"][self.class_start : end])
            if self.bias is not None:
                bias = state["bias"]
                if self.bias_mode == "class":
                    bias = bias[self.class_start : end]
                self.bias.copy_(bias)
