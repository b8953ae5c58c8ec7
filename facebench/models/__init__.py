"""Backbones by name: ``build_backbone(name, embedding_size=512, **kwargs)``, ``list_backbones()``.

Every backbone maps float ``(N, 3, H, W)`` in [-1, 1] to ``(N, embedding_size)`` (not normalized).
"""

from facebench.models import iresnet, mobilefacenet, small  # noqa: F401  (register backbones)
from facebench.models.registry import (
    backbone_options,
    build_backbone,
    list_backbones,
    register_backbone,
)

__all__ = ["backbone_options", "build_backbone", "list_backbones", "register_backbone"]
