"""Entry point: `python run.py task=addition digits=3` (any key of conf/config.yaml can be overridden)."""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from faithfulness.config import register_resolvers, to_plain
from faithfulness.errors import ConfigError, StateError


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> None:
    """Runs one configuration and prints its table and results folder."""
    from faithfulness import pipeline, report

    try:
        out = pipeline.run(to_plain(cfg))
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except StateError as error:  # a locked folder or a corrupt file: not the config's fault
        print(f"error: {error}", file=sys.stderr)
        sys.exit(3)
    print(report.format_table(out.summary))
    print(f"results: {out.out_dir}")


if __name__ == "__main__":
    register_resolvers()
    main()
