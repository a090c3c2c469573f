"""Entry point: `python run.py task=addition digits=3` (any key of conf/config.yaml can be overridden)."""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from faithfulness.config import register_resolvers, to_plain
from faithfulness.errors import ConfigError


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> None:
    """Runs one configuration and prints its table and results folder."""
    from faithfulness import pipeline, report, tracking

    register_resolvers()  # again here: a Slurm job unpickles main() without running this module's __main__ block
    try:
        plain = to_plain(cfg)
        wandb_settings = tracking.settings(plain)  # checked before the run: a typo must not cost the run
        out = pipeline.run(plain)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    print(report.format_table(out.summary))
    tracking.log_run(out.out_dir, wandb_settings, group=tracking.sweep_group())  # after the results are on disk
    print(f"results: {out.out_dir}")


if __name__ == "__main__":
    register_resolvers()
    main()
