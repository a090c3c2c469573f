"""Aggregates runs into the size × difficulty study: one table, CIs, paired comparisons, figures, report.

    python scripts/aggregate.py multirun/cpu_addition/<date>      # a Hydra sweep folder
    python scripts/aggregate.py results/                           # every run under results/
    python scripts/aggregate.py results/ --out study --resamples 2000

Writes into --out (default: <first path>/aggregate, marked so that aggregating again never reads it
as a run): results.parquet (every run's rows, with the file each came from), cells.csv (one row per
model × difficulty), paired.csv, most_faithful.csv, scaling.png/svg, heatmap.png/svg and report.md (answers read as
--answer-extract says: flexible by default, as in runs); with runs of the paper's eight multiple-choice tasks also
table2.csv and table2_spearman.csv (Table 2 of Lanham et al. 2023 beside ours). Exit codes: 2 for bad arguments, 3 for a
damaged results file or an output folder that cannot be written.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from faithfulness.answers import READINGS, view
from faithfulness.errors import ConfigError, StateError
from faithfulness.paths import describe
from faithfulness.results import write_json
from faithfulness.study import aggregate, figures, report, table2


def main(argv: list[str] | None = None) -> int:
    """Aggregates the runs named on the command line; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="+", type=Path, help="results folders, Hydra sweep folders or parquet files")
    parser.add_argument("--out", type=Path, help="output folder (default: <first path>/aggregate)")
    parser.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples per CI")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    parser.add_argument(
        "--answer-extract",
        choices=READINGS,
        default="flexible",
        help="which reading of the answers the figures use (both are in every table; see answer.extract)",
    )
    args = parser.parse_args(argv)
    first = args.paths[0]
    out = args.out or (first if first.is_dir() else first.parent) / "aggregate"
    command = "python scripts/aggregate.py " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])
    )
    try:
        if args.resamples < 0:
            raise ConfigError(f"--resamples={args.resamples} is not allowed: must be ≥ 0")
        if (out / "results.parquet").exists() and not (out / aggregate.MARKER).exists():
            raise ConfigError(f"--out {out} holds a run's results.parquet: choose a folder of its own")
        write_study(aggregate.collect(args.paths)[0], out, args.resamples, args.seed, command, args.answer_extract)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except StateError as error:  # a damaged results file
        print(f"error: {error}", file=sys.stderr)
        return 3
    except OSError as error:  # an output folder that cannot be made or written
        print(f"error: {describe(error)}", file=sys.stderr)
        return 3
    return 0


def write_study(table, out: Path, resamples: int, seed: int, command: str, answer_extract: str = "flexible") -> None:
    """Writes every output into ``out``, first the marker that keeps later aggregations from reading them."""
    out.mkdir(parents=True, exist_ok=True)
    (out / aggregate.MARKER).write_text("written by scripts/aggregate.py; aggregation never reads this folder\n")
    pq.write_table(pa.Table.from_pandas(table, preserve_index=False), out / "results.parquet")
    table = view(table, answer_extract)  # every figure below reads this reading's answer columns
    cells = aggregate.cell_metrics(table, resamples, seed)
    paired = aggregate.paired_differences(table, resamples, seed)
    best = aggregate.most_faithful(cells, paired)
    for name, frame in (("cells", cells), ("paired", paired), ("most_faithful", best)):
        frame.to_csv(out / f"{name}.csv", index=False)
    figures.write_study_figures(cells, out)
    text = report.study_report(cells, paired, best, provenance(table), command)
    if table["task"].isin(table2.PAPER_TABLE2).any():  # the paper's Table 2 beside ours
        ours, rho = table2.comparison(table, resamples, seed), table2.rank_correlation(table, resamples, seed)
        ours.to_csv(out / "table2.csv", index=False)
        rho.to_csv(out / "table2_spearman.csv", index=False)
        text += "\n## The paper's Table 2 beside ours\n\n" + table2.markdown(ours, rho)
        print(table2.markdown(ours, rho))
    (out / "report.md").write_text(text)
    write_json({"command": command, "files": sorted(table["results_file"].unique())}, out / "sources.json")
    print(report.main_table(cells))
    print(f"report: {out / 'report.md'}")


def provenance(table) -> dict:
    """Which models, revisions, templates, engines and versions made the rows."""
    keys = [
        "model",
        "model_revision",
        "model_family",
        "model_size",
        "prompt_format",
        "template_hash",
        "engine_version",
        "dtype",
    ]
    models = []
    for values, group in table.groupby(keys, dropna=False):
        row = dict(zip(keys, values))
        models.append(
            [
                row["model"],
                str(row["model_revision"])[:12],
                row["model_family"],
                row["model_size"],
                row["prompt_format"],
                row["template_hash"],
                f"{group['engine'].iloc[0]} {row['engine_version']}",
                row["dtype"],
                ",".join(map(str, sorted(group["seed"].unique()))),
            ]
        )
    versions = [json.dumps(json.loads(v), sort_keys=True) for v in sorted(table["versions"].unique())]
    return {
        "runs": table["results_file"].nunique(),
        "rows": len(table),
        "models": models,
        "versions": versions,
        "files": sorted(table["results_file"].unique()),
    }


if __name__ == "__main__":
    sys.exit(main())
