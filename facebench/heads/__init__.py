"""Classification heads: ``build_head(name, embedding_size, num_classes, **params)``.

Every head maps (embeddings, global labels) to a scalar loss, exposes ``scores``,
``decision_threshold``, ``param_groups`` and a world-size-free ``full_state_dict``; with a
``process_group`` it owns one contiguous slice of the classes (docs/heads.md).
"""

from __future__ import annotations

import inspect

from facebench.errors import ConfigError
from facebench.heads.base import ClassifierHead, DecisionThreshold, default_bias_init
from facebench.heads.bce import BCEHead, DiverseBCEHead, UnifiedBCEHead, ZeroBiasBCEHead
from facebench.heads.distributed import compensate_ddp_averaging
from facebench.heads.margin import ArcFaceHead, CosFaceHead, NormSoftmaxHead, SoftmaxHead

HEADS: dict[str, type[ClassifierHead]] = {
    "softmax": SoftmaxHead,
    "normsoftmax": NormSoftmaxHead,
    "cosface": CosFaceHead,
    "arcface": ArcFaceHead,
    "bce_d": DiverseBCEHead,
    "bce_u": UnifiedBCEHead,
    "bce_zero": ZeroBiasBCEHead,
}


def head_parameters(name: str) -> list[str]:
    """The keyword parameters head ``name`` accepts (ConfigError for an unknown name)."""
    if name not in HEADS:
        raise ConfigError(f"unknown head {name!r}; known heads: {', '.join(HEADS)}")
    signature = inspect.signature(HEADS[name].__init__)
    return [p.name for p in signature.parameters.values() if p.kind is p.KEYWORD_ONLY]


def build_head(name: str, embedding_size: int, num_classes: int, **params) -> ClassifierHead:
    """Build head ``name``; unknown names or parameters raise ConfigError naming them.

    The result carries ``spec``: name, sizes and params (without the process group), enough to
    rebuild it anywhere with ``build_head(**spec)``-style calls.
    """
    accepted = head_parameters(name)
    for key in params:
        if key not in accepted:
            raise ConfigError(
                f"head {name!r} has no parameter {key!r} (accepted: {', '.join(accepted)})"
            )
    head = HEADS[name](embedding_size, num_classes, **params)
    head.spec = {
        "name": name,
        "embedding_size": embedding_size,
        "num_classes": num_classes,
        "params": {k: v for k, v in params.items() if k != "process_group"},
    }
    return head


__all__ = [
    "HEADS",
    "ArcFaceHead",
    "BCEHead",
    "ClassifierHead",
    "CosFaceHead",
    "DecisionThreshold",
    "DiverseBCEHead",
    "NormSoftmaxHead",
    "SoftmaxHead",
    "UnifiedBCEHead",
    "ZeroBiasBCEHead",
    "build_head",
    "compensate_ddp_averaging",
    "default_bias_init",
    "head_parameters",
]
