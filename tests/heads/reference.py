"""Slow, obvious reference losses for the heads: Python loops over samples and classes."""

from __future__ import annotations

import math

import torch

SOFTMAX_FAMILY = {"softmax", "normsoftmax", "cosface", "arcface"}


#: the papers' defaults (method.md §7), spelled out independently of the library
PAPER_DEFAULTS = {
    "sphereface2": {"scale": 40.0, "pos_weight": 0.7, "t": 3.0, "loss_weight": 50.0},
    "adaface": {"scale": 64.0, "margin": 0.4, "h": 0.333, "momentum": 0.01},
    "curricularface": {"scale": 64.0, "margin": 0.5, "momentum": 0.01},
    "magface": {
        "scale": 64.0,
        "l_a": 10.0,
        "u_a": 110.0,
        "l_m": 0.45,
        "u_m": 0.8,
        "lambda_g": 35.0,
    },
}
#: running statistics a fresh head starts from (AdaFace's code: 20 and 100; CurricularFace: 0)
INITIAL_STATS = {"adaface": {"norm_mean": 20.0, "norm_std": 100.0}, "curricularface": {"t": 0.0}}


def reference_settings(name: str, params: dict, num_classes: int, stats=None) -> dict:
    """The head's effective settings, spelled out independently of the library's defaults;
    ``stats``: the running statistics before the step (a fresh head's by default)."""
    if name in PAPER_DEFAULTS:
        settings = {"name": name, "normalized": True, **PAPER_DEFAULTS[name], **params}
        if name == "sphereface2":
            settings.setdefault("margin_type", "cosine")
            default = 1.5 if settings["margin_type"] == "multiplicative" else 0.4
            settings.setdefault("margin", default)
        settings["stats"] = {**INITIAL_STATS.get(name, {}), **(stats or {})}
        return settings
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
    if settings["name"] in NEW_BASELINES:
        return NEW_BASELINES[settings["name"]](settings, x, y, weight, bias)
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


# ---- the baselines of method.md §7, from the papers' formulas ------------------------------------
def _cos(a, b):
    return torch.dot(a, b) / (torch.linalg.norm(a) * torch.linalg.norm(b))


def _softplus(z):
    return torch.log1p(torch.exp(z))


def _cross_entropy(logits: list, target: int):
    return torch.log(sum(torch.exp(z) for z in logits)) - logits[target]


def _g(z, t):
    return 2 * ((z + 1) / 2) ** t - 1


def sphereface2_loss(p, x, y, weight, bias):
    """w[(λ/r) softplus(−z_y) + ((1−λ)/r) Σ softplus(z_i)]; z = r·(value of g-terms, gradient of
    cos θ) − b (b subtracted: minus the paper's)."""
    r, m, t, lam = p["scale"], p["margin"], p["t"], p["pos_weight"]
    total = 0.0
    for i in range(x.shape[0]):
        for k in range(weight.shape[0]):
            c = _cos(x[i], weight[k])
            if k == int(y[i]):
                if p["margin_type"] == "cosine":
                    value = _g(c, t) - m
                else:
                    adjusted = target_cosine(p["margin_type"], c, m)
                    value = _g(torch.clamp(adjusted, -1.0, 1.0), t)
            else:
                value = _g(c, t) + (m if p["margin_type"] == "cosine" else 0.0)
            z = r * (c + (value - c).detach()) - bias
            if k == int(y[i]):
                total = total + lam / r * _softplus(-z)
            else:
                total = total + (1 - lam) / r * _softplus(z)
    return p["loss_weight"] * total / x.shape[0]


def sphereface2_bias_init(p, num_classes):
    """Minus the paper's closed-form b0 (method.md §7; A and M: the angle at θ = π/2)."""
    r, m, t, lam = p["scale"], p["margin"], p["t"], p["pos_weight"]
    q = lam / ((1 - lam) * (num_classes - 1))
    if p["margin_type"] == "cosine":
        a_y, a_i = r * (2 * 0.5**t - 1 - m), r * (2 * 0.5**t - 1 + m)
    else:
        theta = math.pi / 2 + m if p["margin_type"] == "angular" else m * math.pi / 2
        a_y, a_i = r * _g(math.cos(min(theta, math.pi)), t), r * (2 * 0.5**t - 1)
    b0 = (
        math.log(2 * q)
        - a_i
        - math.log(1 - q + math.sqrt((1 - q) ** 2 + 4 * q * math.exp(a_y - a_i)))
    )
    return -b0


def adaface_stats(p, x):
    """The running mean and std after this batch (the unbiased std of the clipped norms)."""
    norms = [min(max(float(torch.linalg.norm(row)), 1e-3), 100.0) for row in x]
    mean = sum(norms) / len(norms)
    std = math.sqrt(sum((n - mean) ** 2 for n in norms) / (len(norms) - 1))
    a, s = p["momentum"], p["stats"]
    return norms, (1 - a) * s["norm_mean"] + a * mean, (1 - a) * s["norm_std"] + a * std


def adaface_loss(p, x, y, weight, bias):
    s, m, h, eps = p["scale"], p["margin"], p["h"], 1e-3
    norms, mu, sigma = adaface_stats(p, x)
    total = 0.0
    for i in range(x.shape[0]):
        z_hat = min(max(h * (norms[i] - mu) / (sigma + eps), -1.0), 1.0)
        logits = []
        for k in range(weight.shape[0]):
            c = _cos(x[i], weight[k])
            if k == int(y[i]):
                theta = torch.acos(torch.clamp(c, -1 + eps, 1 - eps))
                theta_m = torch.clamp(theta - m * z_hat, eps, math.pi - eps)
                c = torch.cos(theta_m) - (m * z_hat + m)
            logits.append(s * c)
        total = total + _cross_entropy(logits, int(y[i]))
    return total / x.shape[0]


def curricularface_t(p, x, y, weight):
    targets = [float(_cos(x[i], weight[int(y[i])])) for i in range(x.shape[0])]
    a = p["momentum"]
    return (1 - a) * p["stats"]["t"] + a * sum(targets) / len(targets)


def curricularface_loss(p, x, y, weight, bias):
    s, m = p["scale"], p["margin"]
    t = curricularface_t(p, x, y, weight)
    total = 0.0
    for i in range(x.shape[0]):
        target = _cos(x[i], weight[int(y[i])])
        boundary = math.cos(math.acos(float(target)) + m)
        logits = []
        for k in range(weight.shape[0]):
            c = _cos(x[i], weight[k])
            if k == int(y[i]):
                c = target_cosine("angular", c, m)
            elif float(c) > boundary:
                c = c * (t + c)
            logits.append(s * c)
        total = total + _cross_entropy(logits, int(y[i]))
    return total / x.shape[0]


def magface_loss(p, x, y, weight, bias):
    s, l_a, u_a, l_m, u_m = p["scale"], p["l_a"], p["u_a"], p["l_m"], p["u_m"]
    total, regular = 0.0, 0.0
    for i in range(x.shape[0]):
        a = torch.clamp(torch.linalg.norm(x[i]), l_a, u_a)
        margin = (u_m - l_m) / (u_a - l_a) * (a - l_a) + l_m
        logits = []
        for k in range(weight.shape[0]):
            c = _cos(x[i], weight[k])
            if k == int(y[i]):
                theta = torch.acos(c)
                c = (
                    torch.cos(theta + margin)
                    if theta + margin <= math.pi
                    else c - margin * torch.sin(margin)
                )
            logits.append(s * c)
        total = total + _cross_entropy(logits, int(y[i]))
        regular = regular + 1 / a + a / u_a**2
    return total / x.shape[0] + p["lambda_g"] * regular / x.shape[0]


NEW_BASELINES = {
    "sphereface2": sphereface2_loss,
    "adaface": adaface_loss,
    "curricularface": curricularface_loss,
    "magface": magface_loss,
}
