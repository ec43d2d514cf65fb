"""dashboards: what a sweep's results look like. A runs table (pyarrow, or Parquet from
`tokensweep export`) in; a Pareto-front page, static chart and front JSON out.

Imports neither torch, Ray, MLflow nor the platform (checked by import-linter). Import what you
use from its module (`from dashboards.build import build_dashboard`): this package loads nothing,
so `tokensweep.errors` can import `dashboards.errors` and the CLI's help never waits for Plotly.

    dashboards.build           build_dashboard, front_json: runs table -> pareto.html/.png/.svg/.json
    dashboards.runs            the runs table's columns (from vocab), load_runs, Objective
    dashboards.analysis        analyse: runs, configurations, fronts
    dashboards.configurations  seeds grouped by config_id; configurations_table for the export
    dashboards.stats           means, intervals, the interval of a difference: when it is resolved
    dashboards.differences     every pairwise difference of a sweep (the dashboard and `tokensweep report`)
    dashboards.pareto          pareto_mask, hypervolume; dashboards.noise_front: the front with its noise
"""
