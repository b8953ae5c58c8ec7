"""Margins on the target class's cosine, as pluggable pieces: ``MARGINS[type](cosine, m)``.

``m`` is a float or a tensor broadcasting with ``cosine`` (per-sample margins, as in MagFace).
Each is differentiable with its true gradient and non-increasing in the angle θ.
"""

from __future__ import annotations

import math

import torch

# 1 − cos² is clamped here before the square root, so cos = ±1 gives a finite gradient.
MIN_SINE_SQUARED = 1e-12


def sine(cosine: torch.Tensor) -> torch.Tensor:
    """sin θ from cos θ, θ in [0, π]."""
    return torch.sqrt((1.0 - cosine * cosine).clamp(min=MIN_SINE_SQUARED))


def additive_cosine(cosine: torch.Tensor, m) -> torch.Tensor:
    """CosFace / UniFace: cos θ − m."""
    return cosine - m


def angular(cosine: torch.Tensor, m) -> torch.Tensor:
    """ArcFace: cos(θ + m). Where θ + m would pass π (cos θ <= cos(π − m)) the value is
    cos θ − m sin m, InsightFace's rule with easy_margin off: still decreasing in θ (with a small
    jump at the switch)."""
    # sin θ first: the order of the terms fixes autograd's accumulation order, and with it the
    # exact float32 gradient (the same bits as before the margins became pluggable).
    sin_theta = sine(cosine)
    m = torch.as_tensor(m, dtype=cosine.dtype, device=cosine.device)
    shifted = cosine * torch.cos(m) - sin_theta * torch.sin(m)
    return torch.where(cosine > torch.cos(math.pi - m), shifted, cosine - m * torch.sin(m))


def multiplicative(cosine: torch.Tensor, m) -> torch.Tensor:
    """SphereFace: cos(m θ), with m θ capped at π (so the value stays non-increasing in θ)."""
    theta = torch.atan2(sine(cosine), cosine)
    return torch.cos((m * theta).clamp(max=math.pi))


MARGINS = {"cosine": additive_cosine, "angular": angular, "multiplicative": multiplicative}

#: The smallest margin each type allows (a multiplicative margin below 1 would help the target).
MIN_MARGIN = {"cosine": 0.0, "angular": 0.0, "multiplicative": 1.0}
