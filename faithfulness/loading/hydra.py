"""Hydra's side of the config: resolvers, composing outside an app, its errors in one line, model config files."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from faithfulness.errors import ConfigError
from faithfulness.paths import default_cache_dir
from faithfulness.suite import TESTS, choosable

REPO_ROOT = Path(__file__).resolve().parents[2]
MODEL_CONFIGS = REPO_ROOT / "conf" / "model"


def register_resolvers() -> None:
    """Registers ``${sanitize:...}``, ``${repo:...}`` and ``${default_cache_dir:}``.

    ``${sanitize:org/name}`` makes a hub id or path into a folder name ("org--name");
    ``${repo:organisms/faithful}`` is that path inside the repository, absolute, so configs that
    point into the repository work from any current directory.
    """
    if not OmegaConf.has_resolver("sanitize"):
        OmegaConf.register_new_resolver("sanitize", lambda value: re.sub(r"[^\w.-]+", "--", str(value)).strip("-"))
    if not OmegaConf.has_resolver("default_cache_dir"):
        OmegaConf.register_new_resolver("default_cache_dir", default_cache_dir)
    if not OmegaConf.has_resolver("repo"):
        OmegaConf.register_new_resolver("repo", lambda path: str(REPO_ROOT / str(path)))


def to_plain(cfg: DictConfig) -> dict[str, Any]:
    """Resolves every interpolation; a missing or broken value becomes a :class:`ConfigError`."""
    try:
        plain = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    except OmegaConfBaseException as error:
        key = getattr(error, "full_key", None)
        raise ConfigError(f"config value {key or ''!s} cannot be used: {str(error).splitlines()[0]}") from None
    assert isinstance(plain, dict)
    plain.pop("hydra", None)
    return expand_tests(plain)  # type: ignore[arg-type]


def expand_tests(plain: dict[str, Any]) -> dict[str, Any]:
    """``perturbations=all`` → every registered test by name, so that the stored config says what ran."""
    names = plain.get("perturbations")
    if names == "all":
        plain["perturbations"] = [name for name in TESTS if name != "original"]  # the registry's order
    elif isinstance(names, str):
        raise ConfigError(
            f"perturbations={names!r} is not allowed: 'all' or a list of tests from {choosable()}, "
            f"e.g. perturbations=[{names}]"
        )
    return plain


def compose(overrides: list[str]) -> dict[str, Any]:
    """The resolved plain config ``run.py`` gets for these overrides, outside a Hydra app (scripts, tests)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    register_resolvers()
    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
        return to_plain(hydra_compose("config", overrides=overrides))


def hydra_error_line(error: Exception) -> str:
    """Hydra's error for an unknown config group, key or override syntax, as one line.

    ``model=nope`` → "model=nope is not allowed: no config model/nope; choose one of [...]".
    Other messages keep Hydra's words, their lines joined, without the config search path.
    """
    from hydra.errors import MissingConfigException, OverrideParseException

    if isinstance(error, MissingConfigException) and error.missing_cfg_file and error.options:
        group, _, name = error.missing_cfg_file.rpartition("/")
        options = ", ".join(o for o in error.options if not o.startswith("_"))  # "_name": a shared base, not a choice
        return f"{group}={name} is not allowed: no config {error.missing_cfg_file}; choose one of [{options}]"
    text = str(error).split("Config search path:")[0]
    if isinstance(error, OverrideParseException):
        text = f"override {error.override!r}: {text}"
    if isinstance(error.__cause__, OmegaConfBaseException):  # e.g. "Key 'x' is not in struct"
        text += "\n" + str(error.__cause__).split("\n")[0]
    noise = ("full_key:", "object_type=")  # OmegaConf's context lines
    lines = [line.strip() for line in text.splitlines() if line.strip() and not any(n in line for n in noise)]
    return "; ".join(line.rstrip(".") for line in lines) or type(error).__name__


def load_model_config(file: Path, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """A ``conf/model`` file resolved as Hydra would (its ``defaults`` first, then itself, then ``overrides``)."""
    register_resolvers()
    node = OmegaConf.load(file)
    parts = [OmegaConf.load(MODEL_CONFIGS / f"{d}.yaml") for d in node.pop("defaults", []) if d != "_self_"]
    merged = OmegaConf.merge(*parts, node, overrides or {})
    return OmegaConf.to_container(OmegaConf.create({"model": merged}), resolve=True)["model"]  # type: ignore[index]
