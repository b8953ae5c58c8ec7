"""SoftMax-type heads: linear SoftMax, NormFace, CosFace and ArcFace, over a distributed
log-sum-exp so a class-sharded head gives the single-process loss."""

from __future__ import annotations

import math

import torch

from facebench.heads.base import DEFAULT_SCALE, ClassifierHead
from facebench.heads.distributed import all_reduce_max, sum_of_shares

# 1 - cos² is clamped here before the square root, so cos = ±1 gives a finite gradient.
_MIN_SINE_SQUARED = 1e-12


class SoftmaxFamilyHead(ClassifierHead):
    """Cross-entropy over this rank's logits, with max and exp-sum combined across ranks."""

    def per_sample_loss(self, logits, rows, cols):
        shift = all_reduce_max(logits.detach().max(dim=1).values, self.process_group)
        target_share = logits.new_zeros(logits.shape[0]).index_put((rows,), logits[rows, cols])
        target = sum_of_shares(target_share, self.process_group)
        exp_sum = torch.exp(logits.sub_(shift[:, None])).sum(dim=1)
        return shift + torch.log(sum_of_shares(exp_sum, self.process_group)) - target


class SoftmaxHead(SoftmaxFamilyHead):
    """SoftMax with one bias per class: logits w_k·x − b_k (or γ cos θ_k − b_k if normalized)."""

    def __init__(
        self,
        embedding_size,
        num_classes,
        *,
        normalized=False,
        scale=None,
        bias_init=0.0,
        bias_weight_decay=True,
        sample_ratio=1.0,
        process_group=None,
    ):
        super().__init__(
            embedding_size,
            num_classes,
            normalized=normalized,
            scale=scale,
            margin=0.0,
            bias_mode="class",
            bias_init=bias_init,
            bias_weight_decay=bias_weight_decay,
            sample_ratio=sample_ratio,
            process_group=process_group,
        )


class NormSoftmaxHead(SoftmaxFamilyHead):
    """NormFace: cross-entropy over γ cos θ_k, no bias, no margin."""

    def __init__(
        self, embedding_size, num_classes, *, scale=DEFAULT_SCALE, sample_ratio=1.0,
        process_group=None,
    ):  # fmt: skip
        super().__init__(
            embedding_size,
            num_classes,
            normalized=True,
            scale=scale,
            margin=0.0,
            bias_mode="none",
            bias_init=0.0,
            bias_weight_decay=False,
            sample_ratio=sample_ratio,
            process_group=process_group,
        )


class MarginSoftmaxHead(SoftmaxFamilyHead):
    """Normalized SoftMax with a margin on the target logit; ``margin=None`` takes the class
    default."""

    default_margin = 0.0

    def __init__(
        self, embedding_size, num_classes, *, scale=DEFAULT_SCALE, margin=None, sample_ratio=1.0,
        process_group=None,
    ):  # fmt: skip
        super().__init__(
            embedding_size,
            num_classes,
            normalized=True,
            scale=scale,
            margin=self.default_margin if margin is None else margin,
            bias_mode="none",
            bias_init=0.0,
            bias_weight_decay=False,
            sample_ratio=sample_ratio,
            process_group=process_group,
        )


class CosFaceHead(MarginSoftmaxHead):
    """CosFace: the target logit is γ (cos θ_y − m), m = 0.4 by default."""

    default_margin = 0.4


class ArcFaceHead(MarginSoftmaxHead):
    """ArcFace: the target logit is γ cos(θ_y + m) (m = 0.5 by default), differentiated through
    cos θ_y. Where θ_y + m would pass π (cos θ_y <= cos(π − m)) the target is cos θ_y − m sin m,
    InsightFace's rule with easy_margin off: still decreasing in θ (with a small jump at the
    switch)."""

    default_margin = 0.5

    def positive_value(self, values):
        m = self.margin
        sine = torch.sqrt((1.0 - values * values).clamp(min=_MIN_SINE_SQUARED))
        shifted = values * math.cos(m) - sine * math.sin(m)
        return torch.where(values > math.cos(math.pi - m), shifted, values - m * math.sin(m))
