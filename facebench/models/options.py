"""The backbone option schema: every ``model.options`` key a registered backbone accepts."""

from __future__ import annotations

from dataclasses import dataclass, field

from facebench.validate import validate


@dataclass
class BackboneOptions:
    """Every ``model.options`` key a registered backbone accepts, and its allowed values (which
    backbone takes which is ``facebench.models.backbone_options``)."""

    widths: list[int] = field(
        default_factory=list, metadata={"min": 1, "max": 4096, "min_length": 1, "max_length": 8}
    )
    blocks: list[int] = field(
        default_factory=list, metadata={"min": 1, "max": 64, "min_length": 1, "max_length": 8}
    )
    dropout: float = field(default=0.0, metadata={"min": 0.0, "below": 1.0})
    scale: int = field(default=1, metadata={"min": 1, "max": 8})  # mobilefacenet widths x scale
    zero_init_residual: bool = False


def check_backbone_options(options: dict, source: str) -> None:
    """Backbone keyword arguments against :class:`BackboneOptions` (types, allowed values)."""
    validate(options, source, BackboneOptions)
