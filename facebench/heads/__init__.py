"""Classification heads: ``build_head(name, embedding_size, num_classes, **params)``.

Heads register with ``@register_head(name)``. Every head maps (embeddings, global labels) to a
scalar loss, exposes ``scores``, ``decision_threshold``, ``param_groups`` and a world-size-free
``full_state_dict``; with a ``process_group`` it owns one contiguous slice of the classes
(docs/heads.md).
"""

from __future__ import annotations

from facebench.heads.adaface import AdaFaceHead
from facebench.heads.base import ClassifierHead, DecisionThreshold, default_bias_init
from facebench.heads.bce import BCEHead, DiverseBCEHead, UnifiedBCEHead, ZeroBiasBCEHead
from facebench.heads.curricularface import CurricularFaceHead
from facebench.heads.distributed import compensate_ddp_averaging
from facebench.heads.magface import MagFaceHead
from facebench.heads.registry import (
    HEADS,
    build_head,
    head_class,
    head_parameters,
    list_heads,
    register_head,
)
from facebench.heads.softmax import ArcFaceHead, CosFaceHead, NormSoftmaxHead, SoftmaxHead
from facebench.heads.sphereface2 import SphereFace2Head

__all__ = [
    "HEADS",
    "AdaFaceHead",
    "ArcFaceHead",
    "BCEHead",
    "ClassifierHead",
    "CosFaceHead",
    "CurricularFaceHead",
    "DecisionThreshold",
    "DiverseBCEHead",
    "MagFaceHead",
    "NormSoftmaxHead",
    "SoftmaxHead",
    "SphereFace2Head",
    "UnifiedBCEHead",
    "ZeroBiasBCEHead",
    "build_head",
    "compensate_ddp_averaging",
    "default_bias_init",
    "head_class",
    "head_parameters",
    "list_heads",
    "register_head",
]
