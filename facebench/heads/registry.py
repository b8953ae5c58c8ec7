"""The head registry: ``@register_head(name)`` on a ClassifierHead subclass, ``build_head``."""

from __future__ import annotations

from facebench.errors import ConfigError

HEADS: dict[str, type] = {}


def register_head(name: str):
    """Class decorator: register a head under ``name`` (its recipe ``head.name``)."""

    def decorate(cls):
        if name in HEADS:
            raise ValueError(f"head {name!r} is registered twice")
        cls.name = name
        HEADS[name] = cls
        return cls

    return decorate


def list_heads() -> list[str]:
    """Names of the registered heads, in registration order."""
    return list(HEADS)


def head_class(name: str) -> type:
    """The class registered as ``name``; ConfigError listing the known names otherwise."""
    if name not in HEADS:
        raise ConfigError(f"unknown head {name!r}; known heads: {', '.join(sorted(HEADS))}")
    return HEADS[name]


def head_parameters(name: str) -> dict[str, object]:
    """The recipe parameters head ``name`` accepts, with their defaults."""
    cls = head_class(name)
    return {key: getattr(cls, key) for key in cls.params}


def build_head(name: str, embedding_size: int, num_classes: int, **params):
    """Build head ``name``; unknown names or parameters raise ConfigError naming them.

    The result carries ``spec``: name, sizes and params (without the process group), enough to
    rebuild it anywhere with ``build_head(**spec)``-style calls.
    """
    head = head_class(name)(embedding_size, num_classes, **params)
    head.spec = {
        "name": name,
        "embedding_size": embedding_size,
        "num_classes": num_classes,
        "params": {k: v for k, v in params.items() if k != "process_group"},
    }
    return head
