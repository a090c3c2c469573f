"""Studies over many runs: the cells of a size × difficulty study, the paper's Table 2 beside ours, report and figures.

``scripts/aggregate.py`` runs them; the per-run code (pipeline, report, plots) imports nothing of this package.
"""
