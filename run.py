"""Entry point: `python run.py task=addition digits=3` (any key of conf/config.yaml can be overridden).

Sweeps: `python run.py -m model=qwen2.5-coder-0.5b,qwen2.5-coder-1.5b digits=1,2,3 operands=2,4`,
or `python run.py -m +experiment=paper_addition`; then `python scripts/aggregate.py <sweep dir>`.
`-v` (or `verbose=true`) shows vLLM's own output on the console instead of the run's engine.log.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException
from hydra.types import RunMode
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from faithfulness.errors import ConfigError, StateError
from faithfulness.loading.hydra import hydra_error_line, register_resolvers, to_plain
from faithfulness.paths import describe

_BASIC_LAUNCHER = "hydra._internal.core_plugins.basic_launcher.BasicLauncher"
VERBOSE_FLAGS = ("-v", "--verbose")  # not Hydra options: they become the override verbose=true


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> None:
    """Runs one configuration and prints its table and results folder."""
    from faithfulness import pipeline, report, sweep, tracking
    from faithfulness.loading.rules import load

    register_resolvers()  # again here: a Slurm job unpickles main() without running this module's __main__ block
    hydra_cfg = HydraConfig.get()
    # the basic launcher runs every job of a sweep in this process: jobs of one model share an
    # engine in a worker process instead (faithfulness/sweep.py); other launchers isolate jobs already
    shared = hydra_cfg.mode == RunMode.MULTIRUN and hydra_cfg.launcher.get("_target_") == _BASIC_LAUNCHER
    try:
        config = load(to_plain(cfg))  # every value checked before the run: a typo must not cost the run
        out = (sweep.run_shared if shared else pipeline.run)(config)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except StateError as error:  # a locked folder or a corrupt file: not the config's fault
        print(f"error: {error}", file=sys.stderr)
        sys.exit(3)
    except OSError as error:  # a filesystem or network failure: named in one line, as a StateError would be
        print(f"error: {describe(error)}", file=sys.stderr)
        sys.exit(3)
    link_results(Path(hydra_cfg.runtime.output_dir), out.out_dir)
    print(report.format_table(out.summary))
    tracking.log_run(out.out_dir, config.wandb, group=tracking.sweep_group())  # after the results are on disk
    print(f"results: {out.out_dir}")


def expand_verbose_flag(argv: list[str]) -> list[str]:
    """``run.py -v ARGS`` → ``run.py ARGS verbose=true``: Hydra itself knows no ``-v``."""
    rest = [arg for arg in argv[1:] if arg not in VERBOSE_FLAGS]
    return [argv[0], *rest, "verbose=true"] if len(rest) < len(argv) - 1 else list(argv)


def link_results(job_dir: Path, out_dir: Path) -> None:
    """Leaves ``<hydra job dir>/results`` → the results folder, so a sweep dir finds its runs."""
    link = job_dir / "results"
    if link.is_symlink() or link.exists():
        link.unlink()
    os.symlink(out_dir.resolve(), link, target_is_directory=True)


if __name__ == "__main__":
    register_resolvers()
    full_error = os.environ.get("HYDRA_FULL_ERROR") == "1"
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra then raises its config errors to here instead of exiting 1
    sys.argv = expand_verbose_flag(sys.argv)
    try:
        main()
    except (HydraException, OmegaConfBaseException) as error:  # an unknown config group, key or override syntax
        if full_error:
            raise
        print(f"error: {hydra_error_line(error)}", file=sys.stderr)
        sys.exit(2)
