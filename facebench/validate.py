"""Schema validation: a mapping checked against a dataclass, its fields' types and the value
checks their metadata states (bounds, choices, lengths, nested schemas); the recipe schema
(``facebench.config``) and the backbone options (``facebench.models.options``) use it."""

from __future__ import annotations

import dataclasses
import itertools
import math
import operator
import types
import typing

from facebench.errors import ConfigError


def validate(
    data: dict, source: str, cls: type, prefix: str = "", extra: dict | None = None
) -> None:
    """Check the keys and values of a (partial) mapping against dataclass ``cls``: its fields'
    types and the value checks their metadata states; ConfigError naming ``source`` and the key.
    ``extra`` maps keys that are no field to their own check ``f(value, source)``."""
    extra = extra or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: {prefix.rstrip('.') or 'recipe'} must be a mapping")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if key in extra:
            extra[key](value, source)
            continue
        if key not in fields:
            known = ", ".join(fields)
            raise ConfigError(f"{source}: unknown key {dotted!r} (known here: {known})")
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            validate(value, source, hint, f"{dotted}.")
            continue
        _check_type(value, hint, source, dotted)
        _check_finite(value, source, dotted)
        _check_allowed(value, fields[key].metadata, source, dotted)


_BOUNDS = (
    ("min", ">=", operator.ge),
    ("above", ">", operator.gt),
    ("max", "<=", operator.le),
    ("below", "<", operator.lt),
)


def _number(x: float) -> str:
    return str(x) if isinstance(x, int) else f"{x:g}"


def _allowed_range(meta: typing.Mapping) -> str:
    """``[0, 1)``-style text of a field's bounds (``min``/``above``, ``max``/``below``)."""
    lows = (("min", "["), ("above", "("))
    highs = (("max", "]"), ("below", ")"))
    low = next((f"{b}{_number(meta[k])}" for k, b in lows if k in meta), "(-inf")
    high = next((f"{_number(meta[k])}{b}" for k, b in highs if k in meta), "inf)")
    return f"{low}, {high}"


def _check_allowed(value: object, meta: typing.Mapping, source: str, key: str) -> None:
    """The value checks a schema field's metadata states: ``choices``, bounds (on each item of
    a list), list ``length``/``min_length``/``max_length``, ``increasing``, ``file_name`` and a
    nested ``schema`` (a dataclass its mapping's keys must fit)."""
    if value is None:
        return
    if "schema" in meta:
        validate(value, source, meta["schema"], f"{key}.")
    if "choices" in meta and value not in meta["choices"]:
        raise ConfigError(
            f"{source}: {key} must be one of {', '.join(meta['choices'])}, got {value!r}"
        )
    if meta.get("file_name") and value:
        _check_file_name(value, source, key)
    if isinstance(value, list):
        _check_list(value, meta, source, key)
        return
    for name, sign, holds in _BOUNDS:
        if name in meta and isinstance(value, (int, float)) and not holds(value, meta[name]):
            raise ConfigError(
                f"{source}: {key} must be {sign} {_number(meta[name])} (allowed: "
                f"{_allowed_range(meta)}), got {value!r}"
            )


def _check_list(value: list, meta: typing.Mapping, source: str, key: str) -> None:
    """Length and order of a list value, and the bounds of each item."""
    low = meta.get("length", meta.get("min_length", 0))
    high = meta.get("length", meta.get("max_length", math.inf))
    if not low <= len(value) <= high:
        wanted = f"{low}" if low == high else f"{low} to {high}"
        raise ConfigError(f"{source}: {key} must hold {wanted} values, got {value!r}")
    if meta.get("increasing") and any(b <= a for a, b in itertools.pairwise(value)):
        raise ConfigError(f"{source}: {key} must be increasing, got {value!r}")
    item_meta = {name: meta[name] for name, _, _ in _BOUNDS if name in meta}
    for i, item in enumerate(value):
        _check_allowed(item, item_meta, source, f"{key}[{i}]")


def _check_file_name(value: str, source: str, key: str) -> None:
    """A plain file name: no separators, not ``.``/``..``, no control characters."""
    bad = (
        "/" in value
        or "\\" in value
        or value in (".", "..")
        or len(value) > 255
        or any(ord(c) < 32 or ord(c) == 127 for c in value)
    )
    if bad:
        raise ConfigError(
            f"{source}: {key} must be a plain file name (no / or \\, not . or .., no control "
            f"characters, at most 255 characters), got {value!r}"
        )


def _check_finite(value: object, source: str, key: str) -> None:
    """NaN and infinity are refused anywhere in a value (lists and dicts included)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{source}: {key} must be a finite number, got {value!r}")
    if isinstance(value, dict):
        for k, v in value.items():
            _check_finite(v, source, f"{key}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_finite(v, source, f"{key}[{i}]")


def _check_type(value: object, hint: object, source: str, key: str) -> None:
    if not _matches(value, hint):
        name = hint.__name__ if isinstance(hint, type) else str(hint).replace("typing.", "")
        raise ConfigError(f"{source}: {key} must be {name}, got {value!r} ({type(value).__name__})")


def _matches(value: object, hint: object) -> bool:
    """Whether a YAML value fits a schema annotation (int is accepted for float)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if origin is list:
        (item,) = typing.get_args(hint)
        return isinstance(value, list) and all(_matches(v, item) for v in value)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)  # type: ignore[arg-type]
