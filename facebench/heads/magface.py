"""MagFace (Meng et al., CVPR 2021): an angular margin growing with the embedding's magnitude."""

from __future__ import annotations

import torch

from facebench.heads.params import NON_NEGATIVE, POSITIVE, allowed, fail
from facebench.heads.registry import register_head
from facebench.heads.softmax import SoftmaxFamilyHead


@register_head("magface")
class MagFaceHead(SoftmaxFamilyHead):
    """a = ‖x‖ clipped to [l_a, u_a] (with its gradient); target s cos(θ_y + m(a)) with
    m(a) = l_m + (u_m − l_m)(a − l_a)/(u_a − l_a) (ArcFace's fallback past π); cross-entropy
    plus λ_g · mean over the batch of g(a) = 1/a + a/u_a²."""

    params = ("scale", "l_a", "u_a", "l_m", "u_m", "lambda_g", "sample_ratio")
    ranges = allowed(
        l_a=POSITIVE, u_a=POSITIVE, l_m=NON_NEGATIVE, u_m=NON_NEGATIVE, lambda_g=NON_NEGATIVE
    )
    margin_type = "angular"
    l_a = 10.0
    u_a = 110.0
    l_m = 0.45
    u_m = 0.8
    lambda_g = 35.0

    def check_params(self, given):
        super().check_params(given)
        if self.u_a <= self.l_a:
            raise fail(self.name, f"parameter u_a={self.u_a:g} must be > l_a={self.l_a:g}")
        if self.u_m < self.l_m:
            raise fail(self.name, f"parameter u_m={self.u_m:g} must be >= l_m={self.l_m:g}")

    def batch_context(self, x, values, rows, cols):
        return torch.linalg.vector_norm(x, dim=1).clamp(self.l_a, self.u_a)

    def target_value(self, cosine, rows, context):
        slope = (self.u_m - self.l_m) / (self.u_a - self.l_a)
        margin = self.l_m + slope * (context[rows] - self.l_a)
        return self.margin_fn(cosine, margin)

    def regularizer(self, context):
        return self.lambda_g * (1.0 / context + context / self.u_a**2).mean()
