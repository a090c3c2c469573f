"""Weights & Biases: a mirror of a finished run folder, never the only copy of a result.

:func:`log_run` is a pure function of what the pipeline already wrote (``config.json``,
``summary.json``, ``results.parquet``, the figures) and runs after they are on disk, so a W&B
failure (no network, a bad key) only warns. ``wandb`` is imported here and nowhere else.
"""

from __future__ import annotations

import json
import netrc
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pandas as pd

from faithfulness.errors import ConfigError
from faithfulness.registry import lookup
from faithfulness.results import read_results

MODES = ("auto", "online", "offline", "disabled")


@dataclass(frozen=True)
class Settings:
    """The ``wandb:`` block of the config, validated; ``mode`` is resolved (never "auto")."""

    mode: str = "disabled"
    project: str = "faithfulness"
    entity: str | None = None
    group: str | None = None
    tags: tuple[str, ...] = ()
    dir: str = "results"
    table_rows: int = 5000  # a W&B table of more rows is slow to upload and to browse: a seeded sample then
    timeout_s: int = 60  # init timeout: an unreachable server costs at most this, then a warning


def settings(cfg: dict[str, Any]) -> Settings:
    """Validates ``cfg["wandb"]`` before anything slow runs; a bad value is a :class:`ConfigError`.

    ``mode=auto`` (the default) means ``WANDB_MODE`` if set, else online when an API key is configured
    (``WANDB_API_KEY`` or a ``wandb login`` entry in ~/.netrc), else disabled: a new user is never asked
    to log in.
    """
    block = dict(cfg.get("wandb") or {})
    allowed = [f.name for f in fields(Settings)]
    unknown = sorted(set(block) - set(allowed))
    if unknown:
        raise ConfigError(f"wandb.{unknown[0]} is not a setting: choose from {allowed}")
    mode = str(block.pop("mode", None) or "auto")
    if mode not in MODES:
        raise ConfigError(f"wandb.mode={mode!r} is not allowed: choose one of {list(MODES)}")
    for key in ("table_rows", "timeout_s"):
        value = block.get(key, getattr(Settings, key))
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"wandb.{key}={value!r} is not allowed: must be a whole number ≥ 1")
    tags = block.pop("tags", None) or ()
    tags = (tags,) if isinstance(tags, str) else tags
    block = {k: v for k, v in block.items() if v is not None}
    block.setdefault("dir", str(cfg.get("results_dir") or "results"))
    return Settings(mode=_resolve_mode(mode), tags=tuple(map(str, tags)), **block)


def _resolve_mode(mode: str) -> str:
    if mode != "auto":
        return mode
    env = os.environ.get("WANDB_MODE")
    if env:
        resolved = {"dryrun": "offline", "run": "online"}.get(env, env)
        if resolved not in MODES[1:]:
            raise ConfigError(f"WANDB_MODE={env!r} is not allowed (wandb.mode=auto): choose one of {list(MODES[1:])}")
        return resolved
    return "online" if os.environ.get("WANDB_API_KEY") or _netrc_has_key() else "disabled"


def _netrc_has_key() -> bool:
    """Whether ``wandb login`` stored a key for the W&B host (the key itself is never read out)."""
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname or "api.wandb.ai"
    try:
        return netrc.netrc(os.environ.get("NETRC")).authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def log_run(out_dir: Path, opts: Settings, group: str | None = None) -> str | None:
    """Mirrors one run folder to W&B; returns the W&B run folder, or None (disabled or failed).

    Args:
        out_dir: A folder the pipeline finished (``summary.json`` is written last).
        opts: From :func:`settings`.
        group: The group when ``opts.group`` is unset (the multirun sweep, see :func:`sweep_group`).
    """
    if opts.mode == "disabled":
        return None
    try:
        return _log(Path(out_dir), opts, opts.group or group)
    except Exception as error:  # noqa: BLE001 - W&B must never cost a result: anything it raises is a warning
        first = (str(error).strip().splitlines() or [""])[0][:300]
        print(
            f"warning: W&B logging failed ({type(error).__name__}: {first}); the results are on disk in {out_dir}",
            file=sys.stderr,
        )
        return None


def sweep_group() -> str | None:
    """The multirun's sweep folder (shared by its jobs, on any launcher), or None outside a multirun."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return None
    return str(HydraConfig.get().sweep.dir).strip("/").replace("/", "-")


def _log(out_dir: Path, opts: Settings, group: str | None) -> str:
    with _wandb_environment(Path(opts.dir).expanduser()):
        return _log_to_wandb(out_dir, opts, group)


def _log_to_wandb(out_dir: Path, opts: Settings, group: str | None) -> str:
    import wandb  # here only: importing wandb costs a second and W&B is optional

    config = json.loads((out_dir / "config.json").read_text())
    summary = json.loads((out_dir / "summary.json").read_text())
    run_info = summary["run"]
    Path(opts.dir).expanduser().mkdir(parents=True, exist_ok=True)
    wb_settings = wandb.Settings(
        init_timeout=opts.timeout_s, silent=True, console="off", x_disable_stats=True, disable_git=True, save_code=False
    )
    run = wandb.init(
        mode=opts.mode,
        project=opts.project,
        entity=opts.entity,
        group=group,
        tags=list(opts.tags) or None,
        name=f"{run_info['model']} {run_info['task_label']}",
        job_type="faithfulness",
        dir=str(Path(opts.dir).expanduser()),
        settings=wb_settings,
        config={**config, "provenance": run_info},
    )
    try:
        run.summary.update(flatten_summary(summary))
        for key, (table, x, y) in curves(summary["metrics"]).items():
            run.log({key: wandb.plot.line(wandb.Table(dataframe=table), x, y, title=key)}, commit=False)
        for path in map(Path, summary.get("figures", [])):
            if path.suffix == ".png" and path.exists():
                run.log({f"figures/{path.stem}": wandb.Image(str(path))}, commit=False)
        table = results_sample(read_results(out_dir / "results.parquet"), opts.table_rows)
        run.log({"results": wandb.Table(dataframe=table)})
        meta = {"results_dir": str(out_dir)}
        artifact = wandb.Artifact(f"results-{run_info['run_id']}", type="results", metadata=meta)
        for name in ("results.parquet", "summary.json", "config.json"):
            artifact.add_file(str(out_dir / name), policy="immutable")  # final files: no staging copy
        run.log_artifact(artifact)
    except BaseException:
        run.finish(exit_code=1)
        raise
    run.finish()
    return str(Path(run.dir).parent)


@contextmanager
def _wandb_environment(root: Path) -> Iterator[None]:
    """W&B's caches and artifact staging default to the home folder: keep them beside its run files.

    Only while logging, and only where the user has not set W&B's own variables. Weave (LLM call
    tracing, suggested because vLLM imports openai) is off: the run is logged after the fact.
    """
    defaults = {var: str(root / "wandb" / sub) for var, sub in _FOLDERS.items()} | {"WANDB_DISABLE_WEAVE": "true"}
    chosen = {var: os.environ.get(var) for var in defaults}
    os.environ.update({var: value for var, value in defaults.items() if chosen[var] is None})
    try:
        yield
    finally:
        for var, value in chosen.items():
            if value is None:
                os.environ.pop(var, None)


_FOLDERS = {"WANDB_CACHE_DIR": "cache", "WANDB_DATA_DIR": "data", "WANDB_ARTIFACT_DIR": "artifacts"}


def flatten_summary(summary: dict[str, Any]) -> dict[str, Any]:
    """Every metric of ``summary.json`` as flat W&B summary keys (``early_answering/aoc``).

    A metric ``{"value", "ci", "n", "unparsed"}`` becomes ``<path>`` (its value), ``<path>/ci_low``,
    ``<path>/ci_high``, ``<path>/n`` and ``<path>/unparsed``; plain numbers keep their path.
    """
    flat: dict[str, Any] = {}

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, dict) and "value" in node and "ci" in node:
            flat[prefix] = node["value"]
            flat[f"{prefix}/ci_low"], flat[f"{prefix}/ci_high"] = node["ci"]
            flat.update({f"{prefix}/{k}": node[k] for k in ("n", "unparsed") if k in node})
        elif isinstance(node, dict):
            for key, child in node.items():
                walk(f"{prefix}/{key}" if prefix else str(key), child)
        else:
            flat[prefix] = node

    walk("", summary["metrics"])
    flat["skipped_levels"] = len(summary.get("skipped", []))
    flat.update({f"timings/{k}": v for k, v in summary.get("timings", {}).items()})
    return flat


def curves(metrics: dict[str, Any]) -> dict[str, tuple[pd.DataFrame, str, str]]:
    """Each per-fraction / per-length curve of the summary as a table (x, y, 95% CI, n) for a W&B line plot."""
    out: dict[str, tuple[pd.DataFrame, str, str]] = {}
    # a test's block is a dict of metrics (a metric has a "value"; thinking_cut holds counts, bias is read below);
    # one nobody registered fails loudly
    blocks = {
        lookup(test).name: block
        for test, block in metrics.items()
        if isinstance(block, dict)
        and "value" not in block
        and test != "bias"
        and any(isinstance(v, dict) for v in block.values())
    }
    early_bias = metrics.get("bias", {}).get("conditions", {}).get("early_answering")
    for test, block in {**blocks, **({"bias/early_answering": early_bias} if early_bias else {})}.items():
        for name, points in block.items():
            if not name.endswith(("_by_fraction", "_by_length")):
                continue
            y, x = name.split("_by_")
            x = "filler_tokens" if x == "length" else "fraction"
            rows = [
                {x: float(k), y: m["value"], "ci_low": m["ci"][0], "ci_high": m["ci"][1], "n": m["n"]}
                for k, m in points.items()
            ]
            out[f"curves/{test}/{name}"] = (pd.DataFrame(rows).sort_values(x, ignore_index=True), x, y)
    return out


def results_sample(df: pd.DataFrame, max_rows: int) -> pd.DataFrame:
    """The results table for W&B: whole up to ``max_rows``, else a seeded sample in table order.

    Nullable columns become objects with None, which W&B tables take (pandas' <NA> they do not).
    """
    if len(df) > max_rows:
        df = df.sample(n=max_rows, random_state=0).sort_index()
    df = df.astype(object)
    return df.where(df.notna(), None)
