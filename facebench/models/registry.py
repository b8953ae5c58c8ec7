"""The backbone registry: `@register_backbone(name)` on a factory, `build_backbone(name)`."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable

import torch
from torch import nn

from facebench.errors import ConfigError
from facebench.models.options import check_backbone_options

#: Backbones are built only up to this many parameters (2 GB of float32 weights; iResNet-200
#: has 119 M): a bigger one is a typo in its options or embedding size.
MAX_PARAMETERS = 500_000_000

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
    check_backbone(name, embedding_size, kwargs)
    return _factory(name)(embedding_size=embedding_size, **kwargs)


def check_backbone(name: str, embedding_size: int, options: dict) -> int:
    """The parameter count of backbone ``name`` built with ``options`` (counted on the meta
    device: nothing allocated); ConfigError for an unknown backbone or option, a value outside
    its allowed range (:class:`facebench.models.options.BackboneOptions`) or more than
    MAX_PARAMETERS."""
    accepted = backbone_options(name)
    for key in options:
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
    options = {k: list(v) if isinstance(v, tuple) else v for k, v in options.items()}
    check_backbone_options(options, f"backbone {name!r}")  # YAML lists; tuples from Python
    frozen = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in options.items()))
    count = _parameter_count(name, embedding_size, frozen)
    if count > MAX_PARAMETERS:
        raise ConfigError(
            f"backbone {name!r} with embedding_size {embedding_size} and options {options} has "
            f"{count:,} parameters, more than the limit of {MAX_PARAMETERS:,}"
        )
    return count


@functools.lru_cache(maxsize=64)
def _parameter_count(name: str, embedding_size: int, options: tuple) -> int:
    """Parameters of backbone ``name`` built on the meta device with ``dict(options)``."""
    with torch.device("meta"):
        model = _factory(name)(embedding_size=embedding_size, **dict(options))
    return sum(p.numel() for p in model.parameters())


def _factory(name: str) -> Callable[..., nn.Module]:
    """The registered factory for ``name``, or a ConfigError listing the known names."""
    if name not in _BACKBONES:
        raise ConfigError(f"unknown backbone {name!r} (known: {', '.join(list_backbones())})")
    return _BACKBONES[name]
