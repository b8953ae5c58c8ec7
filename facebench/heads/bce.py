"""BCE heads: softplus(−z_y) + λ Σ_{k≠y} softplus(z_k) with one bias per class (bce_d), one
unified bias (bce_u, UniFace's UCE) or none (bce_zero); a cosine margin on the positive only."""

from __future__ import annotations

import torch.nn.functional as F

from facebench.heads.base import ClassifierHead, _config_float
from facebench.heads.distributed import sum_of_shares


class BCEHead(ClassifierHead):
    """Binary cross-entropy of every class score: z_k = γ cos θ_k − b (or w_k·x − b if not
    normalized), z_y = γ (cos θ_y − m) − b; summed over classes, averaged over the batch.
    ``bias_init=None`` means log(10 K). Subclasses set ``bias_mode``."""

    bias_mode: str

    def __init__(
        self,
        embedding_size,
        num_classes,
        *,
        normalized=True,
        scale=None,
        margin=0.0,
        neg_weight=1.0,
        bias_init=None,
        bias_weight_decay=True,
        sample_ratio=1.0,
        process_group=None,
    ):
        super().__init__(
            embedding_size,
            num_classes,
            normalized=normalized,
            scale=scale,
            margin=margin,
            bias_mode=type(self).bias_mode,
            bias_init=bias_init,
            bias_weight_decay=bias_weight_decay,
            sample_ratio=sample_ratio,
            process_group=process_group,
        )
        self.neg_weight = _config_float("neg_weight", neg_weight)

    def per_sample_loss(self, logits, rows, cols):
        positives = F.softplus(-logits[rows, cols])
        negatives = F.softplus(logits).index_put_((rows, cols), logits.new_zeros(rows.shape))
        share = self.neg_weight * negatives.sum(dim=1)
        share = share.index_put((rows,), positives, accumulate=True)
        return sum_of_shares(share, self.process_group)


class DiverseBCEHead(BCEHead):
    """L_bce-d: one bias per class."""

    bias_mode = "class"


class UnifiedBCEHead(BCEHead):
    """L_bce-u / UniFace's UCE: one scalar bias shared by all classes, the learned threshold."""

    bias_mode = "unified"


class ZeroBiasBCEHead(BCEHead):
    """The control: BCE with the bias fixed at 0."""

    bias_mode = "none"

    def __init__(
        self,
        embedding_size,
        num_classes,
        *,
        normalized=True,
        scale=None,
        margin=0.0,
        neg_weight=1.0,
        sample_ratio=1.0,
        process_group=None,
    ):
        super().__init__(
            embedding_size,
            num_classes,
            normalized=normalized,
            scale=scale,
            margin=margin,
            neg_weight=neg_weight,
            bias_init=0.0,
            bias_weight_decay=False,
            sample_ratio=sample_ratio,
            process_group=process_group,
        )
