"""iResNet 18/34/50/100/200: the InsightFace ``arcface_torch`` architecture.

Layer names match InsightFace's, so its published ``backbone.pth`` weights load with
``load_state_dict``. Input 112x112 (the FC layer expects a 7x7 map after four stride-2 stages).
"""

from __future__ import annotations

import torch
from torch import nn

from facebench.models.registry import register_backbone

#: Blocks per stage, as published.
IRESNET_LAYERS = {
    18: (2, 2, 2, 2),
    34: (3, 4, 6, 3),
    50: (3, 4, 14, 3),
    100: (3, 13, 30, 3),
    200: (6, 26, 60, 6),
}
_BN_EPS = 1e-5


def _conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=1, bias=False)


class IBasicBlock(nn.Module):
    """BN-Conv3x3-BN-PReLU-Conv3x3(stride)-BN plus the (projected) identity."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes, eps=_BN_EPS)
        self.conv1 = _conv3x3(inplanes, planes)
        self.bn2 = nn.BatchNorm2d(planes, eps=_BN_EPS)
        self.prelu = nn.PReLU(planes)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn3 = nn.BatchNorm2d(planes, eps=_BN_EPS)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes, eps=_BN_EPS),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        return out + identity


class IResNet(nn.Module):
    """Stem conv3x3(64)-BN-PReLU, four stride-2 stages, BN2d-dropout-FC(512*7*7)-BN1d."""

    fc_scale = 7 * 7

    def __init__(
        self,
        layers: tuple[int, ...],
        embedding_size: int = 512,
        dropout: float = 0.0,
        zero_init_residual: bool = False,
    ):
        super().__init__()
        self.conv1 = _conv3x3(3, 64)
        self.bn1 = nn.BatchNorm2d(64, eps=_BN_EPS)
        self.prelu = nn.PReLU(64)
        self.inplanes = 64
        self.layer1 = self._make_layer(64, layers[0])
        self.layer2 = self._make_layer(128, layers[1])
        self.layer3 = self._make_layer(256, layers[2])
        self.layer4 = self._make_layer(512, layers[3])
        self.bn2 = nn.BatchNorm2d(512, eps=_BN_EPS)
        self.dropout = nn.Dropout(p=dropout, inplace=True)
        self.fc = nn.Linear(512 * self.fc_scale, embedding_size)
        self.features = nn.BatchNorm1d(embedding_size, eps=_BN_EPS)
        self._init_weights(zero_init_residual)

    def _make_layer(self, planes: int, blocks: int) -> nn.Sequential:
        """One stage: a stride-2 block that changes width, then ``blocks - 1`` plain blocks."""
        stage = [IBasicBlock(self.inplanes, planes, stride=2)]
        self.inplanes = planes
        stage += [IBasicBlock(planes, planes) for _ in range(blocks - 1)]
        return nn.Sequential(*stage)

    def _init_weights(self, zero_init_residual: bool) -> None:
        """InsightFace's init: conv N(0, 0.1), BN (1, 0); the embedding BN's scale frozen at 1."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0, 0.1)
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
            if zero_init_residual and isinstance(m, IBasicBlock):
                nn.init.constant_(m.bn3.weight, 0)
        nn.init.constant_(self.features.weight, 1.0)
        self.features.weight.requires_grad = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.prelu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.dropout(torch.flatten(self.bn2(x), 1))
        return self.features(self.fc(x))


def _iresnet_factory(depth: int):
    """A registered factory for iResNet-``depth``."""

    def build(
        embedding_size: int = 512, dropout: float = 0.0, zero_init_residual: bool = False
    ) -> IResNet:
        return IResNet(IRESNET_LAYERS[depth], embedding_size, dropout, zero_init_residual)

    build.__doc__ = f"iResNet-{depth}, layers {IRESNET_LAYERS[depth]}, 112x112 input."
    return register_backbone(f"iresnet{depth}")(build)


for _depth in IRESNET_LAYERS:
    _iresnet_factory(_depth)
