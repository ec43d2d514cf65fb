"""Sweep specs: a TOML file (plus `--set` overrides) -> a validated, immutable `SweepSpec`.

Everything a sweep will do is decided and checked here, before Ray, MLflow or Optuna is imported:
every trial of a grid is built once with `TrialConfig.from_dict`, every Optuna range is checked at
both ends. A bad value is a one-line `SpecError` naming the key and, when it came from the file,
`file:line`. Nothing here writes anywhere.

Sections (docs/sweeps.md is the full reference):

    [sweep]      name (required), description, metric, mode, seeds, plugins, max_trials, smoke, budget_hours
    [trial]      base TrialConfig values for every trial (`embedding`, `backbone` pick the model)
    [grid]       trial options -> lists; the sweep is their cartesian product
    [[variants]] extra explicit trials (a table of options, optional `name`)
    [search]     algorithm = "optuna", num_samples, seed, objectives, confirm_seeds, [search.params]
    [resources]  cpus, gpus ("auto" or a number; < 1 shares a GPU), max_concurrent_trials
    [scheduler]  type = "fifo" | "asha", metric, mode, grace_period, reduction_factor, max_t
    [failure]    max_failures, keep_checkpoints
    [tracking]   system_metrics, system_metrics_interval_s
    [bench]      enabled, batch, repeats, steps: every architecture benched alone after the trials

A spec may start with `extends = "FILE"` (relative to its folder): it is laid over that file's tables
(merged key by key, arrays replaced).

An embedding's knobs (cluster_iters, conv_depth, ... or a plugin's) set in [trial] or [grid] apply to
the trials whose embedding declares them and are dropped from the others; trials that become
identical are merged. If no trial's embedding declares one, setting it is an error, as it is in a
[[variants]] table beside a model without it.

The package: model.py (the sections, each key's default, rule and help; SweepSpec), source.py
(reading, `extends`, `--set`, `--smoke`, locations), context.py (what the checks report through, the
generic section reader, the predicates they share), validate.py (the sections), grid.py (the trials of
a grid, their names), search.py (an Optuna search's ranges).
"""

from tokensweep.spec.model import DATA_ENV, SearchParam, SweepSpec, TrialVariant
from tokensweep.spec.source import apply_set, key_lines, load_spec, parse_spec, parse_value, read_spec_text

__all__ = [
    "DATA_ENV",
    "SearchParam",
    "SweepSpec",
    "TrialVariant",
    "apply_set",
    "key_lines",
    "load_spec",
    "parse_spec",
    "parse_value",
    "read_spec_text",
]
