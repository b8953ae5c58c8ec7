"""Mixed precision: the autocast dtype for a device, and a dynamic loss scaler for fp16.

The scaler follows torch.amp.GradScaler's rules (scale the loss, unscale the gradients, skip the
step and halve the scale on overflow, double it after ``growth_interval`` clean steps), but the
overflow flag is summed over ranks: with a class-sharded head an overflow can sit in one rank's
rows only, and every rank must then skip the same step.
"""

from __future__ import annotations

import torch

from facebench.errors import ConfigError


def autocast_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """``none`` -> None (float32), ``auto`` -> fp16 on CUDA / bf16 elsewhere, or as named."""
    if amp == "none":
        return None
    if amp == "auto":
        return torch.float16 if device.type == "cuda" else torch.bfloat16
    if amp == "fp16" and device.type != "cuda":
        raise ConfigError(f"train.amp=fp16 needs a CUDA device (got {device}); use bf16 on CPU")
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[amp]


class LossScaler:
    """Dynamic loss scaling (enabled for fp16); a no-op scale of 1 when disabled."""

    def __init__(self, enabled: bool, init_scale: float = 2.0**16, growth_interval: int = 2000):
        self.enabled = enabled
        self.scale = init_scale if enabled else 1.0
        self.growth_interval = growth_interval
        self.clean_steps = 0

    def unscale_(self, params: list[torch.nn.Parameter]) -> None:
        """Divide the gradients by the current scale, in place."""
        if self.enabled:
            inv = 1.0 / self.scale
            for p in params:
                if p.grad is not None:
                    p.grad.mul_(inv)

    def update(self, overflow: bool) -> None:
        """After a step: back off on overflow, grow after enough clean steps."""
        if not self.enabled:
            return
        if overflow:
            self.scale *= 0.5
            self.clean_steps = 0
            return
        self.clean_steps += 1
        if self.clean_steps >= self.growth_interval:
            self.scale *= 2.0
            self.clean_steps = 0

    def state_dict(self) -> dict:
        return {"scale": self.scale, "clean_steps": self.clean_steps}

    def load_state_dict(self, state: dict) -> None:
        self.scale = float(state["scale"])
        self.clean_steps = int(state["clean_steps"])
