"""The backbone registry: `@register_backbone(name)` on a factory, `build_backbone(name)`."""

from __future__ import annotations

import inspect
from collections.abc import Callable

from torch import nn

from facebench.errors import ConfigError

_BACKBONES: dict[str, Callable[..., nn.Module]] = {}


def register_backbone(name: str) -> Callable:
    """Decorator that registers a factory ``f(embedding_size=512, **kwargs) -> nn.Module``."""

    def decorate(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _BACKBONES:
            raise ValueError(f"backbone {name!r} is registered twice")
        _BACKBONES[name] = factory
        return factory

    return decorate


def list_backbones() -> list[str]:
    """Names of the registered backbones, sorted (iresnet18 before iresnet100)."""
    return sorted(_BACKBONES, key=lambda name: (name.rstrip("0123456789"), len(name), name))


def backbone_options(name: str) -> dict[str, object]:
    """The keyword arguments backbone ``name`` accepts, with their defaults."""
    factory = _factory(name)
    return {
        p.name: p.default
        for p in inspect.signature(factory).parameters.values()
        if p.default is not inspect.Parameter.empty
    }


def build_backbone(name: str, embedding_size: int = 512, **kwargs) -> nn.Module:
    """Build backbone ``name``: float ``(N, 3, H, W)`` in [-1, 1] -> ``(N, embedding_size)``."""
    factory = _factory(name)
    accepted = backbone_options(name)
    for key in kwargs:
        if key not in accepted:
            raise ConfigError(
                f"backbone {name!r} has no option {key!r} (options: {', '.join(sorted(accepted))})"
            )
    if isinstance(embedding_size, bool) or not isinstance(embedding_size, int):
        raise ConfigError(
            f"backbone {name!r}: embedding_size must be an int, got {embedding_size!r}"
        )
    if embedding_size < 1:
        raise ConfigError(f"backbone {name!r}: embedding_size must be >= 1, got {embedding_size}")
    return factory(embedding_size=embedding_size, **kwargs)


def _factory(name: str) -> Callable[..., nn.Module]:
    """The registered factory for ``name``, or a ConfigError listing the known names."""
    if name not in _BACKBONES:
        raise ConfigError(f"unknown backbone {name!r} (known: {', '.join(list_backbones())})")
    return _BACKBONES[name]
