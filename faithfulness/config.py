"""Turning Hydra's config into the plain dict the pipeline takes."""

from __future__ import annotations

import re
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from faithfulness.errors import ConfigError


def register_resolvers() -> None:
    """Registers ``${sanitize:...}``: a hub id or path made into a folder name ("org/name" → "org--name")."""
    if not OmegaConf.has_resolver("sanitize"):
        OmegaConf.register_new_resolver("sanitize", lambda value: re.sub(r"[^\w.-]+", "--", str(value)).strip("-"))


def to_plain(cfg: DictConfig) -> dict[str, Any]:
    """Resolves every interpolation; a missing or broken value becomes a :class:`ConfigError`."""
    try:
        plain = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    except OmegaConfBaseException as error:
        key = getattr(error, "full_key", None)
        raise ConfigError(f"config value {key or ''!s} cannot be used: {str(error).splitlines()[0]}") from None
    assert isinstance(plain, dict)
    plain.pop("hydra", None)
    return plain  # type: ignore[return-value]
