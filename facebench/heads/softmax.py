"""SoftMax-type heads: linear SoftMax, NormFace, CosFace and ArcFace, over a distributed
log-sum-exp so a class-sharded head gives the single-process loss."""

from __future__ import annotations

import torch

from facebench.heads.base import ClassifierHead
from facebench.heads.distributed import all_reduce_max, sum_of_shares
from facebench.heads.registry import register_head


class SoftmaxFamilyHead(ClassifierHead):
    """Cross-entropy over this rank's logits, with max and exp-sum combined across ranks."""

    def per_sample_loss(self, logits, rows, cols):
        shift = all_reduce_max(logits.detach().max(dim=1).values, self.process_group)
        target_share = logits.new_zeros(logits.shape[0]).index_put((rows,), logits[rows, cols])
        target = sum_of_shares(target_share, self.process_group)
        exp_sum = torch.exp(logits.sub_(shift[:, None])).sum(dim=1)
        return shift + torch.log(sum_of_shares(exp_sum, self.process_group)) - target


@register_head("softmax")
class SoftmaxHead(SoftmaxFamilyHead):
    """SoftMax with one bias per class: logits w_k·x − b_k (or γ cos θ_k − b_k if normalized)."""

    params = ("normalized", "scale", "bias_init", "bias_weight_decay", "sample_ratio")
    bias_mode = "class"
    normalized = False
    bias_init = 0.0
    bias_weight_decay = True


@register_head("normsoftmax")
class NormSoftmaxHead(SoftmaxFamilyHead):
    """NormFace: cross-entropy over γ cos θ_k, no bias, no margin."""

    params = ("scale", "sample_ratio")


@register_head("cosface")
class CosFaceHead(SoftmaxFamilyHead):
    """CosFace: the target logit is γ (cos θ_y − m), m = 0.4 by default."""

    params = ("scale", "margin", "sample_ratio")
    margin = 0.4


@register_head("arcface")
class ArcFaceHead(SoftmaxFamilyHead):
    """ArcFace: the target logit is γ cos(θ_y + m) (m = 0.5 by default), differentiated through
    cos θ_y, with InsightFace's fallback past π (``margins.angular``)."""

    params = ("scale", "margin", "sample_ratio")
    margin = 0.5
    margin_type = "angular"
