"""dashboards: what a sweep's results look like. A runs table (pyarrow, or Parquet from
`tokensweep export`) in; a Pareto-front page, static chart and front JSON out.

Imports neither torch, Ray, MLflow nor the platform (checked by import-linter). The public names
below load lazily: `tokensweep.errors` imports `dashboards.errors`, and the CLI's help must not
wait for Plotly and matplotlib.
"""

import importlib

_PUBLIC = {
    "build_dashboard": "dashboards.build",
    "front_json": "dashboards.build",
    "OUTPUT_FILES": "dashboards.build",
    "analyse": "dashboards.analysis",
    "Analysis": "dashboards.analysis",
    "Objective": "dashboards.runs",
    "load_runs": "dashboards.runs",
    "RUNS_SCHEMA": "dashboards.runs",
    "metric_columns": "dashboards.runs",
    "pareto_mask": "dashboards.pareto",
    "hypervolume": "dashboards.pareto",
    "InputError": "dashboards.errors",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'dashboards' has no attribute {name!r}")
