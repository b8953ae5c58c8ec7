"""MobileFaceNet (Chen et al. 2018) with the global depthwise (GDC) head, for 112x112 input.

``scale=1`` is the standard network (InsightFace model zoo: 0.99M parameters with a 128-d
embedding, 0.22 GMACs = 0.45 GFLOPs). ``scale=2`` doubles the widths and keeps the expansion
widths, as ``arcface_torch``'s "mbf" does (0.45 GMACs).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from facebench.errors import ConfigError
from facebench.models.registry import register_backbone


def _conv_bn(
    in_ch: int,
    out_ch: int,
    kernel: int = 1,
    stride: int = 1,
    groups: int = 1,
    act: bool = True,
    padding: int | None = None,
) -> nn.Sequential:
    """Conv (no bias, "same" padding unless given) + BN, followed by PReLU when ``act``."""
    padding = kernel // 2 if padding is None else padding
    layers = [
        nn.Conv2d(in_ch, out_ch, kernel, stride, padding, groups=groups, bias=False),
        nn.BatchNorm2d(out_ch),
    ]
    if act:
        layers.append(nn.PReLU(out_ch))
    return nn.Sequential(*layers)


class Bottleneck(nn.Module):
    """Expand 1x1 to ``hidden`` -> depthwise 3x3 (stride) -> linear 1x1; residual when it fits."""

    def __init__(self, in_ch: int, out_ch: int, hidden: int, stride: int = 1):
        super().__init__()
        self.residual = stride == 1 and in_ch == out_ch
        self.body = nn.Sequential(
            _conv_bn(in_ch, hidden),
            _conv_bn(hidden, hidden, 3, stride, groups=hidden),
            _conv_bn(hidden, out_ch, act=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        return x + out if self.residual else out


class MobileFaceNet(nn.Module):
    """Stem, four bottleneck stages (56 -> 28 -> 14 -> 7 px), 1x1 to 512, GDC head -> BN1d."""

    def __init__(
        self, embedding_size: int = 512, scale: int = 1, blocks: Sequence[int] = (1, 4, 6, 2)
    ):
        super().__init__()
        narrow, wide = 64 * scale, 128 * scale
        if blocks[0] == 1:
            first = _conv_bn(narrow, narrow, 3, groups=64)
        else:
            first = self._stage(narrow, blocks[0], hidden=128)
        self.body = nn.Sequential(
            _conv_bn(3, narrow, 3, stride=2),
            first,
            Bottleneck(narrow, narrow, hidden=128, stride=2),
            self._stage(narrow, blocks[1], hidden=128),
            Bottleneck(narrow, wide, hidden=256, stride=2),
            self._stage(wide, blocks[2], hidden=256),
            Bottleneck(wide, wide, hidden=512, stride=2),
            self._stage(wide, blocks[3], hidden=256),
            _conv_bn(wide, 512),
        )
        self.gdc = _conv_bn(512, 512, 7, groups=512, act=False, padding=0)
        self.fc = nn.Linear(512, embedding_size, bias=False)
        self.features = nn.BatchNorm1d(embedding_size)

    @staticmethod
    def _stage(channels: int, count: int, hidden: int) -> nn.Sequential:
        return nn.Sequential(*(Bottleneck(channels, channels, hidden) for _ in range(count)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.gdc(self.body(x)), 1)
        return self.features(self.fc(x))


@register_backbone("mobilefacenet")
def mobilefacenet(
    embedding_size: int = 512, scale: int = 1, blocks: Sequence[int] = (1, 4, 6, 2)
) -> MobileFaceNet:
    """The standard MobileFaceNet (``scale=2``: arcface_torch's wider "mbf"); 112x112 input."""
    if len(blocks) != 4 or min(blocks) < 1 or scale < 1:
        raise ConfigError(
            f"backbone 'mobilefacenet': needs 4 block counts >= 1 and scale >= 1, "
            f"got blocks={list(blocks)}, scale={scale}"
        )
    return MobileFaceNet(embedding_size, scale, tuple(blocks))
