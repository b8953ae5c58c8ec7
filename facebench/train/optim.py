"""Optimizer (SGD or AdamW) over backbone and head parameter groups; per-step LR schedules."""

from __future__ import annotations

import math

import torch

from facebench.config import OptimConfig, ScheduleConfig


def build_optimizer(
    cfg: OptimConfig, backbone: torch.nn.Module, head: torch.nn.Module
) -> torch.optim.Optimizer:
    """SGD (momentum, optional Nesterov) or AdamW; the head decides its own weight-decay groups
    (e.g. whether the bias decays) through ``head.param_groups(weight_decay)``."""
    groups = [{"params": list(backbone.parameters()), "weight_decay": cfg.weight_decay}]
    if hasattr(head, "param_groups"):
        groups += head.param_groups(cfg.weight_decay)
    else:
        groups.append({"params": list(head.parameters()), "weight_decay": cfg.weight_decay})
    if cfg.name == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps)
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov)


def lr_factor(
    cfg: ScheduleConfig, base_lr: float, step: int, steps_per_epoch: int, total_steps: int
) -> float:
    """Multiplier of the base LR for optimizer step ``step`` (0-based).

    Linear warm-up from ``1/warmup_steps`` to 1, then constant, multistep (``gamma`` at each
    milestone epoch), polynomial ``(1 - p) ** power`` or cosine over the remaining steps, where
    ``p`` goes from 0 to 1 after the warm-up; poly and cosine end at ``min_lr``.
    """
    warmup = round(cfg.warmup_epochs * steps_per_epoch)
    if step < warmup:
        return (step + 1) / warmup
    if cfg.name == "constant":
        return 1.0
    if cfg.name == "multistep":
        passed = sum(step >= round(m * steps_per_epoch) for m in cfg.milestones)
        return cfg.gamma**passed
    progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
    floor = cfg.min_lr / base_lr if base_lr > 0 else 0.0
    if cfg.name == "poly":
        shape = (1.0 - progress) ** cfg.power
    else:
        shape = 0.5 * (1.0 + math.cos(math.pi * progress))
    return floor + (1.0 - floor) * shape


def build_scheduler(
    cfg: ScheduleConfig,
    optimizer: torch.optim.Optimizer,
    base_lr: float,
    steps_per_epoch: int,
    total_steps: int,
) -> torch.optim.lr_scheduler.LambdaLR:
    """A LambdaLR stepped once per optimizer step."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(cfg, base_lr, step, steps_per_epoch, total_steps)
    )
