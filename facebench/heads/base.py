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
    sum_of_shares,
)
from facebench.heads.margins import MARGINS, MIN_MARGIN
from facebench.heads.params import (
    FINITE,
    FLAG,
    NON_NEGATIVE,
    POSITIVE,
    RATIO,
    allowed,
    check_param,
    check_size,
    fail,
)
from facebench.heads.sampling import num_sampled_classes, sample_local_classes

DEFAULT_SCALE = 64.0
WEIGHT_INIT_STD = 0.01
NORM_EPS = 1e-12  # as F.normalize: vectors shorter than this are divided by it instead


@dataclass(frozen=True)
class DecisionThreshold:
    """A head's one learned decision threshold: a class score above ``value`` means "this
    class". ``units``: "cosine" for normalized heads, "w.x" for linear ones."""

    value: float
    units: str


def default_bias_init(num_classes: int) -> float:
    """UniFace's initial bias log(10 K): the K - 1 negative terms then start near e^{-b} K = 0.1."""
    return math.log(10.0 * num_classes)


class ClassifierHead(nn.Module):
    """A classifier over K classes whose loss subclasses define from margin-adjusted logits.

    Subclasses declare what differs as class attributes: ``bias_mode``, ``normalized``, the
    defaults of ``scale``, ``margin`` and ``margin_type`` (a key of ``margins.MARGINS``),
    ``params``, the recipe parameters they accept (each defaults to the class attribute of that
    name), and ``ranges``, the values each new parameter allows (merged with their bases'). Rank
    i of ``process_group`` holds the rows of a contiguous class slice (all K without a group).
    Scores are s_k = γ cos θ_k − b_k (normalized) or w_k·x − b_k (linear, γ = 1);
    ``bias_init=None`` means log(10 K).
    """

    name = "head"  # set by @register_head
    params: tuple[str, ...] = ("sample_ratio",)
    #: what each parameter allows (``params.check_param``); a subclass lists only its new ones
    ranges = allowed(
        normalized=FLAG,
        bias_weight_decay=FLAG,
        margin_type=tuple(MARGINS),
        scale=POSITIVE,
        margin=NON_NEGATIVE,
        bias_init=FINITE,
        sample_ratio=RATIO,
    )
    bias_mode = "none"
    normalized = True
    scale = DEFAULT_SCALE
    margin = 0.0
    margin_type = "cosine"
    bias_init: float | None = None
    bias_weight_decay = False
    sample_ratio = 1.0
    #: running statistics ((buffer name, initial value), ...), saved in ``full_state_dict``
    running_stats: tuple[tuple[str, float], ...] = ()

    def __init_subclass__(cls, **kwargs):
        """Merge ``ranges`` along the bases; a parameter without an entry is refused here."""
        super().__init_subclass__(**kwargs)
        merged = {}
        for klass in reversed(cls.__mro__):
            merged.update(vars(klass).get("ranges", {}))
        cls.ranges = allowed(**merged)
        missing = [key for key in cls.params if key not in merged]
        if missing:
            raise TypeError(
                f"{cls.__qualname__}: parameters {', '.join(missing)} have no entry in ranges"
            )

    def __init__(self, embedding_size: int, num_classes: int, *, process_group=None, **params):
        super().__init__()
        for key in params:
            if key not in self.params:
                raise ConfigError(
                    f"head {self.name!r} has no parameter {key!r} "
                    f"(accepted: {', '.join(self.params)})"
                )
        self.embedding_size = check_size("embedding_size", embedding_size)
        self.num_classes = check_size("num_classes", num_classes)
        for key, value in params.items():
            setattr(self, key, value)
        self.check_params(params)
        self.margin_fn = MARGINS[self.margin_type]

        self.process_group = process_group
        self.rank, self.world_size = group_rank_and_size(process_group)
        self.class_start, self.num_local = class_slice(self.num_classes, self.world_size, self.rank)
        weight = torch.empty(self.num_local, self.embedding_size)
        self.weight = nn.Parameter(weight.normal_(0.0, WEIGHT_INIT_STD))
        if self.bias_mode == "class":
            self.bias = nn.Parameter(torch.full((self.num_local,), self.initial_bias()))
        elif self.bias_mode == "unified":
            self.bias = nn.Parameter(torch.tensor(self.initial_bias()))
        else:
            self.register_parameter("bias", None)
        for key, value in self.running_stats:
            self.register_buffer(key, torch.tensor(float(value)))
        self.sampled_classes: torch.Tensor | None = None

    def check_params(self, given: dict) -> None:
        """Validate every recipe parameter (``given``: those set explicitly, as given);
        subclasses add checks that involve several parameters."""
        for key in self.params:
            value = getattr(self, key)
            if not (key == "bias_init" and value is None):  # None: log(10 K)
                setattr(self, key, check_param(self.name, key, value, self.ranges[key]))
        if not self.normalized:
            if "scale" in given:
                raise fail(
                    self.name, f"parameter scale={given['scale']!r} applies only to normalized=True"
                )
            if self.margin != 0:
                raise fail(
                    self.name,
                    f"parameter margin={given.get('margin', self.margin)!r} needs normalized=True",
                )
            self.scale = 1.0
        low = MIN_MARGIN[self.margin_type]
        if self.margin < low:
            raise fail(
                self.name,
                f"parameter margin={self.margin!r} must be >= {low:g} for margin_type "
                f"{self.margin_type!r}",
            )

    def initial_bias(self) -> float:
        """The bias every class (or the unified bias) starts from: ``bias_init`` or log(10 K)."""
        return default_bias_init(self.num_classes) if self.bias_init is None else self.bias_init

    # ---- what subclasses define -------------------------------------------------------------
    def batch_context(self, x, values, rows, cols):
        """Per-batch quantities the margins need (e.g. embedding norms), computed identically on
        every rank from the gathered batch ``x``; running statistics are updated here. None by
        default."""
        return None

    def target_value(self, cosine: torch.Tensor, rows: torch.Tensor, context) -> torch.Tensor:
        """The target classes' values after the margin (``rows``: their samples); unscaled."""
        return self.margin_fn(cosine, self.margin)

    def other_values(self, values: torch.Tensor, context) -> torch.Tensor:
        """The (N, C) class values as they enter the logits (unscaled; target entries are
        overwritten afterwards); may work in place. The identity by default."""
        return values

    def regularizer(self, context) -> torch.Tensor | float:
        """A term added to the mean loss (once, not per rank). 0 by default."""
        return 0.0

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
            context = self.batch_context(x, values, rows, cols)
            positive = self.scale * self.target_value(values[rows, cols], rows, context)
            # In place from here: (N, C) is the big tensor, and no backward needs these values.
            values = self.other_values(values, context)
            logits = values.mul_(self.scale) if self.scale != 1.0 else values
            bias = self._bias(local_rows)
            if bias is not None:
                bias = bias.to(dtype)
                logits.sub_(bias)
                positive = positive - (bias if bias.dim() == 0 else bias[cols])
            logits.index_put_((rows, cols), positive)
            loss = self.per_sample_loss(logits, rows, cols).mean()
            extra = self.regularizer(context)
            if torch.is_tensor(extra):
                # every rank holds the whole batch: rank 0's copy alone carries the gradient
                loss = loss + sum_of_shares(
                    extra if self.rank == 0 else extra * 0, self.process_group
                )
            return loss

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
        for key, buffer in self.named_buffers():  # running statistics, the same on every rank
            state[key] = buffer.detach().cpu().clone()
        return state

    def load_full_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Load a :meth:`full_state_dict` written at any world size; keep this rank's slice."""
        buffers = dict(self.named_buffers())
        expected = {"weight"} | ({"bias"} if self.bias is not None else set()) | set(buffers)
        if set(state) != expected:
            raise ModelError(f"head state has keys {sorted(state)}, expected {sorted(expected)}")
        shapes = {"weight": (self.num_classes, self.embedding_size)}
        shapes.update({key: tuple(buffer.shape) for key, buffer in buffers.items()})
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
            for key, buffer in buffers.items():
                buffer.copy_(state[key])
