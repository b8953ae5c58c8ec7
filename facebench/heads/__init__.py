"""Classification heads: ``build_head(name, embedding_size, num_classes, **params)``.

Heads register with ``@register_head(name)``; importing this package imports every module in it,
so a head in a new file here is registered with no other edit. Every head maps (embeddings,
global labels) to a scalar loss, exposes ``scores``, ``decision_threshold``, ``param_groups`` and
a world-size-free ``full_state_dict``; with a ``process_group`` it owns one contiguous slice of
the classes (docs/heads.md).
"""

from __future__ import annotations

import importlib
import pkgutil

from facebench.heads.base import ClassifierHead, DecisionThreshold, default_bias_init
from facebench.heads.distributed import compensate_ddp_averaging
from facebench.heads.registry import (
    HEADS,
    build_head,
    head_class,
    head_parameters,
    list_heads,
    register_head,
)

for _module in pkgutil.iter_modules(__path__):  # sorted by name: a stable registration order
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "HEADS",
    "ClassifierHead",
    "DecisionThreshold",
    "build_head",
    "compensate_ddp_averaging",
    "default_bias_init",
    "head_class",
    "head_parameters",
    "list_heads",
    "register_head",
]
