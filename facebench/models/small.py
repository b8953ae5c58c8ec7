"""Small backbones for CPU work: ``small_resnet`` (28x28 images) and ``tiny_face`` (112x112).

Both reuse the iResNet block, end in global average pooling, so any input of at least 28x28
works, and finish with FC -> BN1d like the face backbones.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from facebench.errors import ConfigError
from facebench.models.iresnet import IBasicBlock
from facebench.models.registry import register_backbone


def _conv_bn_prelu(in_ch: int, out_ch: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.PReLU(out_ch),
    )


class PooledResNet(nn.Module):
    """A stem, stages of iResNet blocks (first block of each stage strided), BN, global pool, FC."""

    def __init__(
        self,
        stem: nn.Module,
        stem_width: int,
        widths: Sequence[int],
        blocks: Sequence[int],
        strides: Sequence[int],
        embedding_size: int,
        dropout: float,
    ):
        super().__init__()
        self.stem = stem
        stages, inplanes = [], stem_width
        for width, count, stride in zip(widths, blocks, strides, strict=True):
            stage = [IBasicBlock(inplanes, width, stride)]
            stage += [IBasicBlock(width, width) for _ in range(count - 1)]
            stages.append(nn.Sequential(*stage))
            inplanes = width
        self.stages = nn.Sequential(*stages)
        self.bn = nn.BatchNorm2d(inplanes)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(inplanes, embedding_size)
        self.features = nn.BatchNorm1d(embedding_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.bn(self.stages(self.stem(x))))
        return self.features(self.fc(self.dropout(torch.flatten(x, 1))))


def _check_stages(name: str, widths: Sequence[int], blocks: Sequence[int]) -> None:
    if len(widths) != len(blocks) or not widths:
        raise ConfigError(
            f"backbone {name!r}: widths {list(widths)} and blocks {list(blocks)} "
            "must be non-empty and of equal length"
        )
    if min(blocks) < 1 or min(widths) < 1:
        raise ConfigError(f"backbone {name!r}: widths and blocks must be >= 1")


@register_backbone("small_resnet")
def small_resnet(
    embedding_size: int = 512,
    widths: Sequence[int] = (16, 32, 64),
    blocks: Sequence[int] = (1, 1, 1),
    dropout: float = 0.0,
) -> PooledResNet:
    """For 28x28 images (Fashion-MNIST): stride-1 stem, stages at 28, 14, 7 pixels."""
    _check_stages("small_resnet", widths, blocks)
    strides = [1] + [2] * (len(widths) - 1)
    stem = _conv_bn_prelu(3, widths[0], stride=1)
    return PooledResNet(stem, widths[0], widths, blocks, strides, embedding_size, dropout)


@register_backbone("tiny_face")
def tiny_face(
    embedding_size: int = 512,
    widths: Sequence[int] = (32, 64, 128),
    blocks: Sequence[int] = (1, 1, 1),
    dropout: float = 0.0,
) -> PooledResNet:
    """For 112x112 faces on a CPU: two stride-2 stem convs (112 -> 28), then strided stages."""
    _check_stages("tiny_face", widths, blocks)
    stem = nn.Sequential(_conv_bn_prelu(3, 16, stride=2), _conv_bn_prelu(16, widths[0], stride=2))
    strides = [1] + [2] * (len(widths) - 1)
    return PooledResNet(stem, widths[0], widths, blocks, strides, embedding_size, dropout)
