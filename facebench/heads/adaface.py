"""AdaFace (Kim et al., CVPR 2022): angular and additive margins scaled by the embedding norm."""

from __future__ import annotations

import math

import torch

from facebench.heads.params import POSITIVE, RATIO, allowed
from facebench.heads.registry import register_head
from facebench.heads.softmax import SoftmaxFamilyHead

NORM_CLIP = (1e-3, 100.0)
EPS = 1e-3  # the std's guard and the angle clip [ε, π − ε], as the paper's code


@register_head("adaface")
class AdaFaceHead(SoftmaxFamilyHead):
    """Target s(cos(θ_y − m ẑ) − (m + m ẑ)), θ_y and θ_y − m ẑ clipped to [ε, π − ε], negatives
    s cos θ_k, cross-entropy. ẑ = clip(h (n − μ)/(σ + ε), −1, 1) with n the embedding's norm
    (detached, clipped to [1e-3, 100]) and μ, σ running mean and std of n over training batches
    (μ ← (1 − α) μ + α mean, α = ``momentum``; from 20 and 100 as the paper's code)."""

    params = ("scale", "margin", "h", "momentum", "sample_ratio")
    ranges = allowed(h=POSITIVE, momentum=RATIO)
    margin = 0.4
    h = 0.333
    momentum = 0.01
    running_stats = (("norm_mean", 20.0), ("norm_std", 100.0))

    def batch_context(self, x, values, rows, cols):
        norms = torch.linalg.vector_norm(x.detach(), dim=1).clamp(*NORM_CLIP)
        if self.training:
            with torch.no_grad():
                self.norm_mean.lerp_(norms.mean().to(self.norm_mean), self.momentum)
                if norms.numel() > 1:  # one sample has no spread: σ stays
                    self.norm_std.lerp_(norms.std().to(self.norm_std), self.momentum)
        scaled = self.h * (norms - self.norm_mean) / (self.norm_std + EPS)
        return scaled.clamp(-1.0, 1.0)

    def target_value(self, cosine, rows, context):
        z = context[rows]
        theta = torch.acos(cosine.clamp(-1.0 + EPS, 1.0 - EPS))
        shifted = (theta - self.margin * z).clamp(EPS, math.pi - EPS)
        return torch.cos(shifted) - (self.margin + self.margin * z)
