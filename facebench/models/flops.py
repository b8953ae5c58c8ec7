"""Count multiply-accumulates (MACs) of a forward pass with forward hooks; FLOPs = 2 x MACs.

``macs`` counts Conv2d and Linear (the number papers quote: iResNet50 6.3 GMACs at 112x112);
BatchNorm and PReLU are counted apart as one MAC per element (``elementwise``), since BN folds
into the convolution at inference. Bias adds, residual adds and pooling are not counted.
``backbone_macs`` builds the model on the meta device, so even iResNet200 counts in well under
a second without allocating weights or running convolutions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from facebench.models.registry import build_backbone, list_backbones

_ELEMENTWISE = (nn.BatchNorm1d, nn.BatchNorm2d, nn.PReLU, nn.ReLU)


@dataclass
class MacCount:
    """MACs of one forward pass of one image, split by layer kind, and the parameter count."""

    macs: int = 0
    elementwise: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    params: int = 0

    @property
    def flops(self) -> int:
        """FLOPs of the Conv2d/Linear layers under the usual convention (2 per MAC)."""
        return 2 * self.macs


def _layer_macs(module: nn.Module, inputs: tuple, output: torch.Tensor) -> int:
    """MACs of one call of a Conv2d / Linear, or the elements of a BN / activation."""
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        return output.numel() * (module.in_channels // module.groups) * kh * kw
    if isinstance(module, nn.Linear):
        return output.numel() * module.in_features
    return output.numel()


def count_macs(model: nn.Module, input_size: tuple[int, int] = (112, 112)) -> MacCount:
    """MACs of ``model`` on one ``(1, 3, H, W)`` input (run on the model's device, eval mode)."""
    result = MacCount(params=sum(p.numel() for p in model.parameters()))

    def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        kind = type(module).__name__
        count = _layer_macs(module, inputs, output)
        result.by_kind[kind] = result.by_kind.get(kind, 0) + count
        if isinstance(module, _ELEMENTWISE):
            result.elementwise += count
        else:
            result.macs += count

    counted = (nn.Conv2d, nn.Linear, *_ELEMENTWISE)
    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, counted)]
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, 3, *input_size, device=device))
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return result


def backbone_macs(
    name: str, input_size: int = 112, embedding_size: int = 512, **kwargs
) -> MacCount:
    """MACs and parameters of registered backbone ``name`` at ``input_size`` (meta device)."""
    with torch.device("meta"):
        model = build_backbone(name, embedding_size, **kwargs)
    return count_macs(model, (input_size, input_size))


def macs_table(names: list[str] | None = None, input_size: int = 112) -> str:
    """A Markdown table of parameters, GMACs and GFLOPs of registered backbones (defaults)."""
    lines = [
        f"| backbone | params (M) | GMACs at {input_size}x{input_size} | GFLOPs (2 x MACs) "
        "| BN + PReLU (M elements) |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in names or list_backbones():
        count = backbone_macs(name, input_size)
        lines.append(
            f"| {name} | {count.params / 1e6:.2f} | {count.macs / 1e9:.3f} "
            f"| {count.flops / 1e9:.3f} | {count.elementwise / 1e6:.1f} |"
        )
    return "\n".join(lines)
