"""Offline data for the paper's eight multiple-choice benchmarks, read from pinned packages.

    records, provenance = load_records("arc_challenge", "~/.cache/faithfulness")

See ``docs/data.md`` for the packages, their sha256 pins, split sizes and licences.
"""

from faithfulness.data.load import load_records
from faithfulness.data.specs import DATASETS, DatasetSpec, MCRecord

__all__ = ["DATASETS", "DatasetSpec", "MCRecord", "load_records"]
