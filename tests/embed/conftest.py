"""Shared fixtures for the embedding tests: a tiny backbone and a few face-sized images."""

import numpy as np
import pytest
import torch
from torch import nn


class TinyBackbone(nn.Module):
    """Conv-BN-PReLU-pool-linear: enough layers to make export and flip-sum non-trivial."""

    def __init__(self, embedding_size: int = 16):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 5, stride=4, padding=2, bias=False),
            nn.BatchNorm2d(8),
            nn.PReLU(8),
            nn.Conv2d(8, 8, 3, stride=2, padding=1),
        )
        self.fc = nn.Linear(8 * 14 * 14, embedding_size)

    def forward(self, x):
        return self.fc(self.features(x).flatten(1))


@pytest.fixture
def tiny_backbone():
    torch.manual_seed(0)
    module = TinyBackbone().eval()
    with torch.no_grad():  # non-trivial BN statistics so export must fold them right
        module.features[1].running_mean.uniform_(-0.5, 0.5)
        module.features[1].running_var.uniform_(0.5, 2.0)
    return module


@pytest.fixture
def faces():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(5, 112, 112, 3), dtype=np.uint8)
