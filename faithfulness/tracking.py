"""Weights & Biases: a mirror of a finished run folder, never the only copy of a result.

:func:`log_run` is a pure function of what the pipeline already wrote (``config.json``,
``summary.json``, ``results.parquet``, the figures) and runs after they are on disk, so a W&B
failure (no network, a bad key) only warns. ``wandb`` is imported here and nowhere else.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from faithfulness.config.sections import Wandb
from faithfulness.results import read_results
from faithfulness.suite import lookup


def log_run(out_dir: Path, opts: Wandb, group: str | None = None) -> str | None:
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


def _log(out_dir: Path, opts: Wandb, group: str | None) -> str:
    with _wandb_environment(Path(opts.dir).expanduser()):
        return _log_to_wandb(out_dir, opts, group)


def _log_to_wandb(out_dir: Path, opts: Wandb, group: str | None) -> str:
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
    ``<path>/ci_high``, ``<path>/n``, ``<path>/unparsed`` and, when some resamples were undefined,
    ``<path>/ci_undefined``; plain numbers keep their path.
    """
    flat: dict[str, Any] = {}

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, dict) and "value" in node and "ci" in node:
            flat[prefix] = node["value"]
            flat[f"{prefix}/ci_low"], flat[f"{prefix}/ci_high"] = node["ci"]
            flat.update({f"{prefix}/{k}": node[k] for k in ("n", "unparsed", "ci_undefined") if k in node})
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
