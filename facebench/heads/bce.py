"""BCE heads: softplus(−z_y) + λ Σ_{k≠y} softplus(z_k) with one bias per class (bce_d), one
unified bias (bce_u, UniFace's UCE) or none (bce_zero); a margin on the positive only."""

from __future__ import annotations

import torch.nn.functional as F

from facebench.heads.base import ClassifierHead
from facebench.heads.distributed import sum_of_shares
from facebench.heads.params import POSITIVE, allowed
from facebench.heads.registry import register_head


class BCEHead(ClassifierHead):
    """Binary cross-entropy of every class score: z_k = γ cos θ_k − b (or w_k·x − b if not
    normalized), z_y = γ μ(cos θ_y, m) − b with μ the ``margin_type`` margin (cos θ_y − m by
    default); ``pos_scale`` softplus(−z_y) + ``neg_scale`` Σ_{k≠y} softplus(z_k), averaged over
    the batch. ``neg_weight`` λ weights the negatives."""

    params = (
        "normalized",
        "scale",
        "margin",
        "margin_type",
        "neg_weight",
        "bias_init",
        "bias_weight_decay",
        "sample_ratio",
    )
    ranges = allowed(neg_weight=POSITIVE)
    bias_weight_decay = True
    neg_weight = 1.0

    @property
    def pos_scale(self) -> float:
        """The factor of the positive term."""
        return 1.0

    @property
    def neg_scale(self) -> float:
        """The factor of the negative sum."""
        return self.neg_weight

    def per_sample_loss(self, logits, rows, cols):
        positives = F.softplus(-logits[rows, cols])
        negatives = F.softplus(logits).index_put_((rows, cols), logits.new_zeros(rows.shape))
        share = self.neg_scale * negatives.sum(dim=1)
        if self.pos_scale != 1.0:
            positives = self.pos_scale * positives
        share = share.index_put((rows,), positives, accumulate=True)
        return sum_of_shares(share, self.process_group)


@register_head("bce_d")
class DiverseBCEHead(BCEHead):
    """L_bce-d: one bias per class."""

    bias_mode = "class"


@register_head("bce_u")
class UnifiedBCEHead(BCEHead):
    """L_bce-u / UniFace's UCE: one scalar bias shared by all classes, the learned threshold."""

    bias_mode = "unified"


@register_head("bce_zero")
class ZeroBiasBCEHead(BCEHead):
    """The control: BCE with the bias fixed at 0."""

    params = ("normalized", "scale", "margin", "margin_type", "neg_weight", "sample_ratio")
    bias_mode = "none"
    bias_weight_decay = False
