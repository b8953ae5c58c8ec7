"""CurricularFace (Huang et al., CVPR 2020): ArcFace with a curriculum for hard negatives."""

from __future__ import annotations

import math

import torch

from facebench.heads.distributed import sum_of_shares
from facebench.heads.margins import sine
from facebench.heads.params import RATIO, allowed
from facebench.heads.registry import register_head
from facebench.heads.softmax import SoftmaxFamilyHead


@register_head("curricularface")
class CurricularFaceHead(SoftmaxFamilyHead):
    """Target s cos(θ_y + m) (ArcFace's fallback past π); a negative with cos θ_j > cos(θ_y + m)
    becomes s cos θ_j (t + cos θ_j); cross-entropy. t is a running mean of the batch's target
    cosines (t ← (1 − α) t + α mean cos θ_y, α = ``momentum``, no gradient, t0 = 0), updated in
    training before it is used."""

    params = ("scale", "margin", "momentum", "sample_ratio")
    ranges = allowed(momentum=RATIO)
    margin = 0.5
    margin_type = "angular"
    momentum = 0.01
    running_stats = (("t", 0.0),)

    def batch_context(self, x, values, rows, cols):
        """cos(θ_y + m) of every sample (no gradient), from target cosines summed over ranks."""
        with torch.no_grad():
            share = values.new_zeros(values.shape[0]).index_put((rows,), values[rows, cols])
            target = sum_of_shares(share, self.process_group)
            if self.training:
                self.t.lerp_(target.mean().to(self.t), self.momentum)
            return target * math.cos(self.margin) - sine(target) * math.sin(self.margin)

    def other_values(self, values, context):
        hard = values.detach() > context[:, None]
        return torch.where(hard, values * (self.t.to(values) + values), values)
