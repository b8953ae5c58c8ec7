"""SphereFace2 (Wen et al., ICLR 2022): one-vs-all binary losses with one unified bias.

Here, as in every head, the bias is subtracted: z = r·ĝ − b, so this b is minus the paper's."""

from __future__ import annotations

import math

import torch

from facebench.heads.base import DecisionThreshold
from facebench.heads.bce import BCEHead
from facebench.heads.params import OPEN_UNIT, POSITIVE, Interval, allowed, fail
from facebench.heads.registry import register_head

#: the margin each type starts from when ``margin`` is not given (M: our choice, see docs/heads.md)
DEFAULT_MARGINS = {"cosine": 0.4, "angular": 0.4, "multiplicative": 1.5}


def similarity_adjustment(z: torch.Tensor, t: float) -> torch.Tensor:
    """g(z) = 2((z + 1)/2)^t − 1 on z clamped to [−1, 1]."""
    return 2.0 * ((z.clamp(-1.0, 1.0) + 1.0) / 2.0) ** t - 1.0


def inverse_adjustment(v: float, t: float) -> float:
    """g⁻¹(v) = 2((v + 1)/2)^(1/t) − 1 for v in [−1, 1] (clamped there)."""
    return 2.0 * ((min(max(v, -1.0), 1.0) + 1.0) / 2.0) ** (1.0 / t) - 1.0


def straight_through(cosine: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """``value`` forward, the gradient of ``cosine`` backward (the released code's rule)."""
    return cosine + (value - cosine).detach()


@register_head("sphereface2")
class SphereFace2Head(BCEHead):
    """z_y = r(g(μ(cos θ_y)) − m_C) − b and z_i = r(g(cos θ_i) + m_C) − b, with μ the
    ``margin_type`` margin for A (angular) and M (multiplicative) and m_C = m for C (cosine, the
    margin after g on both sides) else 0; g enters the forward value only, the gradient is that of
    r·cos θ. Loss w·[(λ/r) softplus(−z_y) + ((1−λ)/r) Σ_{i≠y} softplus(z_i)], w = ``loss_weight``,
    λ = ``pos_weight``; b starts at the paper's closed form. Decision: z = 0 ⇔ cos θ = g⁻¹(b/r)."""

    params = (
        "scale",
        "margin",
        "margin_type",
        "pos_weight",
        "t",
        "loss_weight",
        "bias_init",
        "bias_weight_decay",
        "sample_ratio",
    )
    ranges = allowed(pos_weight=OPEN_UNIT, t=Interval(1, None), loss_weight=POSITIVE)
    bias_mode = "unified"
    scale = 40.0
    margin = None  # DEFAULT_MARGINS[margin_type]
    pos_weight = 0.7
    t = 3.0
    loss_weight = 50.0

    def check_params(self, given):
        if self.margin is None:
            self.margin = DEFAULT_MARGINS.get(self.margin_type, 0.0)
        super().check_params(given)
        if self.num_classes < 2:
            raise fail(self.name, f"needs at least 2 classes, got num_classes={self.num_classes}")

    @property
    def pos_scale(self) -> float:
        return self.loss_weight * self.pos_weight / self.scale

    @property
    def neg_scale(self) -> float:
        return self.loss_weight * (1.0 - self.pos_weight) / self.scale

    def _margin_after_g(self) -> float:
        return self.margin if self.margin_type == "cosine" else 0.0

    def initial_bias(self) -> float:
        """Minus the paper's b0: with every cosine 0 it zeroes the bias gradient of the loss."""
        if self.bias_init is not None:
            return self.bias_init
        r, m, t, lam = self.scale, self.margin, self.t, self.pos_weight
        q = lam / ((1.0 - lam) * (self.num_classes - 1))
        g0 = 2.0 * 0.5**t - 1.0
        if self.margin_type == "cosine":
            a_y, a_i = r * (g0 - m), r * (g0 + m)
        else:
            angle = math.pi / 2 + m if self.margin_type == "angular" else m * math.pi / 2
            a_y = r * (2.0 * ((math.cos(min(math.pi, angle)) + 1.0) / 2.0) ** t - 1.0)
            a_i = r * g0
        root = math.sqrt((1.0 - q) ** 2 + 4.0 * q * math.exp(a_y - a_i))
        if q <= 1.0:
            log_sum = math.log(1.0 - q + root)
        else:  # 1 - q + root cancels (few classes): it equals 4q e^(a_y - a_i) / (root + q - 1)
            log_sum = math.log(4.0 * q) + a_y - a_i - math.log(root + q - 1.0)
        return -(math.log(2.0 * q) - a_i - log_sum)

    def target_value(self, cosine, rows, context):
        if self.margin_type == "cosine":
            value = similarity_adjustment(cosine.detach(), self.t) - self.margin
        else:
            value = similarity_adjustment(self.margin_fn(cosine.detach(), self.margin), self.t)
        return straight_through(cosine, value)

    def other_values(self, values, context):
        with torch.no_grad():
            shift = similarity_adjustment(values, self.t) + self._margin_after_g() - values
        return values.add_(shift)

    def decision_threshold(self) -> DecisionThreshold:
        """The cosine where z = 0 without margin: g(cos θ) = b/r, cos θ = g⁻¹(b/r); b/r outside
        [−1, 1] (every cosine on one side) reads as −1 or 1."""
        return DecisionThreshold(
            inverse_adjustment(float(self.bias.detach()) / self.scale, self.t), "cosine"
        )
