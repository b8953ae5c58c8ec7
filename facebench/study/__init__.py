"""The uniform-classification study (docs/results.md): plan, tuning, runs, statistics, report.

``benchmarks/uniform_study.py`` is its command line; the pieces live here, one job per module:
:mod:`~facebench.study.heads` (the compared heads and their tuning grids), :mod:`~.plan` (which
runs), :mod:`~.data` (idx set to packs), :mod:`~.runs` (train and measure one run, resumable),
:mod:`~.stats` (paired intervals and verdicts), :mod:`~.report` (tables, claims, figure).
"""
