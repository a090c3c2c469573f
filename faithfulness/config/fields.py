"""Typed config fields: :func:`setting` declares one (its meaning and range), :func:`build` checks a block against them.

A bad value is refused with one line naming the key, the value and what is allowed; a field without
``doc`` metadata (``RunConfig.plain``, ``RunConfig.task_keys``) is not a config key and is set by
``faithfulness.loading.rules``.
"""

from __future__ import annotations

import math
import typing
from collections.abc import Collection
from dataclasses import MISSING, field, fields, is_dataclass
from typing import Any

from faithfulness.errors import ConfigError


def setting(
    default: Any = MISSING,
    doc: str = "",
    *,
    low: float | None = None,
    high: float | None = None,
    above: float | None = None,
    choices: tuple[Any, ...] | None = None,
) -> Any:
    """A dataclass field with its one-line meaning and its allowed range (``low`` ≤ v ≤ ``high``, v > ``above``)."""
    meta = {"doc": doc, "low": low, "high": high, "above": above, "choices": choices}
    return field(default=default, metadata=meta)


def build(cls: type, block: Any, prefix: str = "", extra: Collection[str] = ()) -> Any:
    """Checks a plain dict against dataclass ``cls`` and returns the instance.

    Args:
        cls: A dataclass whose config keys are declared with :func:`setting`.
        block: Its plain dict.
        prefix: The block's dotted path, for messages (``"engine."``).
        extra: Keys allowed beside the declared ones and left out of the instance (the task's own keys).

    Raises:
        ConfigError: one line naming the first bad key, its value and what is allowed.
    """
    if not isinstance(block, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}={block!r} is not allowed: must be a group of settings")
    keys = [f for f in fields(cls) if "doc" in f.metadata]  # the rest are set by rules.load, not by a config
    names = [f.name for f in keys]
    unknown = sorted(set(block) - set(names) - set(extra))
    if unknown:
        raise ConfigError(f"{prefix}{unknown[0]} is not a setting: choose from {names + sorted(extra)}")
    hints = typing.get_type_hints(cls)
    values = {}
    for f in keys:
        key = prefix + f.name
        if f.name not in block:
            if f.default is MISSING:
                raise ConfigError(f"{key} is missing: {f.metadata['doc']}")
            continue
        values[f.name] = _check(key, block[f.name], hints[f.name], f.metadata)
    return cls(**values)


def _check(key: str, value: Any, kind: Any, meta: Any) -> Any:
    args = typing.get_args(kind)
    nullable = type(None) in args
    if nullable:  # X | None
        if value is None:
            return None
        kind = next(a for a in args if a is not type(None))
        args = typing.get_args(kind)
    if kind is Any:
        return value
    if is_dataclass(kind):
        return build(kind, value, f"{key}.")
    origin = typing.get_origin(kind)
    if origin is dict:
        if not isinstance(value, dict) or not value:
            raise ConfigError(f"{key}={value!r} is not allowed: must be a non-empty group of named settings")
        return {name: _check(f"{key}.{name}", v, args[1], meta) for name, v in value.items()}
    if origin is tuple:
        item = args[0]
        if not isinstance(value, (list, tuple)) or not all(_is_a(v, item) for v in value):
            noun = {str: "strings", int: "whole numbers"}.get(item, "values")
            raise ConfigError(f"{key}={value!r} is not allowed: must be a list of {noun}")
        return tuple(value)
    if not _is_a(value, kind) or not _in_range(value, meta):
        raise ConfigError(f"{key}={value!r} is not allowed: {allowed(kind, meta, nullable)}")
    return value  # as given: 0 stays 0, so a request and its store key read as they always did


def _is_a(value: Any, kind: Any) -> bool:
    if isinstance(value, bool):
        return kind is bool  # YAML booleans are ints to Python: true must not pass as 1
    if kind is float:
        return isinstance(value, (int, float)) and math.isfinite(value)
    return isinstance(value, kind)


def _in_range(value: Any, meta: Any) -> bool:
    if meta.get("choices") is not None:
        return value in meta["choices"]
    low, high, above = meta.get("low"), meta.get("high"), meta.get("above")
    return (low is None or value >= low) and (high is None or value <= high) and (above is None or value > above)


def allowed(kind: Any, meta: Any, nullable: bool = False) -> str:
    """What a field allows, in words: ``must be a whole number ≥ 1``, ``choose 'rule' or 'model'``."""
    choices = meta.get("choices")
    if choices is not None:
        names = [repr(c) for c in choices]
        return f"choose {names[0]} or {names[1]}" if len(names) == 2 else f"choose one of [{', '.join(names)}]"
    noun = {int: "a whole number", float: "a number", bool: "true or false", str: "a string"}[kind]
    low, high, above = meta.get("low"), meta.get("high"), meta.get("above")
    bounds = []
    if above is not None:
        bounds.append(f"> {above:g}")
    if low is not None and high is not None:
        bounds = [f"from {low:g} to {high:g}"]
    elif low is not None:
        bounds.append(f"≥ {low:g}")
    elif high is not None:
        bounds.append(f"≤ {high:g}")
    return f"must be {'null or ' if nullable else ''}{noun} {' and '.join(bounds)}".rstrip()
