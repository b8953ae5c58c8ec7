"""Slow, obvious reference losses for the heads: Python loops over samples and classes."""

from __future__ import annotations

import math

import torch

SOFTMAX_FAMILY = {"softmax", "normsoftmax", "cosface", "arcface"}


def reference_settings(name: str, params: dict, num_classes: int) -> dict:
    """The head's effective settings, spelled out independently of the library's defaults."""
    normalized = params.get("normalized", name != "softmax")
    default_margin = {"cosface": 0.4, "arcface": 0.5}.get(name, 0.0)
    default_type = "angular" if name == "arcface" else "cosine"
    return {
        "name": name,
        "normalized": normalized,
        "scale": params.get("scale", 64.0) if normalized else 1.0,
        "margin": params.get("margin", default_margin),
        "margin_type": params.get("margin_type", default_type),
        "neg_weight": params.get("neg_weight", 1.0),
    }


def target_cosine(margin_type: str, cosine, margin: float):
    """The target class's value after the margin, angular ones written through the angle."""
    if margin_type == "angular":
        theta = torch.acos(cosine)
        if theta + margin <= math.pi:
            return torch.cos(theta + margin)
        return cosine - margin * math.sin(margin)
    if margin_type == "multiplicative":
        return torch.cos(torch.clamp(margin * torch.acos(cosine), max=math.pi))
    return cosine - margin


def reference_loss(settings: dict, x, y, weight, bias) -> torch.Tensor:
    """Mean over samples of the head's loss, one class at a time; ``bias`` is None, a scalar
    or a (K,) tensor."""
    total = 0.0
    num_classes = weight.shape[0]
    for i in range(x.shape[0]):
        logits = []
        for k in range(num_classes):
            value = torch.dot(x[i], weight[k])
            if settings["normalized"]:
                value = value / (torch.linalg.norm(x[i]) * torch.linalg.norm(weight[k]))
            if k == int(y[i]):
                value = target_cosine(settings["margin_type"], value, settings["margin"])
            logit = settings["scale"] * value
            if bias is not None:
                logit = logit - (bias if bias.dim() == 0 else bias[k])
            logits.append(logit)
        target = logits[int(y[i])]
        if settings["name"] in SOFTMAX_FAMILY:
            total = total + torch.log(sum(torch.exp(z) for z in logits)) - target
        else:
            negatives = sum(
                torch.log1p(torch.exp(z)) for k, z in enumerate(logits) if k != int(y[i])
            )
            total = total + torch.log1p(torch.exp(-target)) + settings["neg_weight"] * negatives
    return total / x.shape[0]
