"""Sweep specs: a TOML file (plus `--set` overrides) -> a validated, immutable `SweepSpec`.

Everything a sweep will do is decided and checked here, before Ray, MLflow or Optuna is imported:
every trial of a grid is built and validated with `TrialConfig.from_dict`, every Optuna range is
checked at both ends. A bad value is a one-line `SpecError` naming the key and, when it came from
the file, `file:line`. Nothing here writes anywhere.

Sections (see docs/sweeps.md for the full reference):

    [sweep]      name (required), description, metric, mode
    [trial]      base TrialConfig values for every trial (plus `embedding`, see below)
    [grid]       TrialConfig options -> lists; the sweep is their cartesian product
    [[variants]] extra explicit trials (a table of options, optional `name`)
    [search]     algorithm = "optuna", num_samples, seed, objectives, [search.params]
    [resources]  cpus, gpus ("auto" or a number; < 1 shares a GPU), max_concurrent_trials
    [scheduler]  type = "fifo" | "asha", metric, mode, grace_period, reduction_factor, max_t
    [failure]    max_failures, keep_checkpoints
    [tracking]   system_metrics, system_metrics_interval_s

`embedding = "patch" | "conv" | "supertoken"` may stand in for `model`: it picks that embedding
within the base model's family (`vit_s_*`, `vit_tiny_*`).

Supertoken-only options (conv_depth, extra_conv, cluster_iters, channels, mask_border) set in
[trial] or [grid] apply to the supertoken trials of a sweep and are dropped from its patch and conv
trials (whose embedding has no such knob); trials that become identical are merged. If no trial of
the sweep is a supertoken model, setting one is an error. Set in a [[variants]] table beside a
non-supertoken model, it is an error too.

The package: model.py (vocabulary, SweepSpec), source.py (reading, `--set`, locations),
validate.py (the sections), grid.py, search.py, names.py, checks.py.
"""

from tokensweep.spec.model import (
    DATA_ENV,
    EMBEDDINGS,
    EPOCH_METRICS,
    FINAL_METRICS,
    MEASURED_METRICS,
    SUPERTOKEN_ONLY,
    SearchParam,
    SweepSpec,
    TrialVariant,
)
from tokensweep.spec.names import search_trial_name
from tokensweep.spec.search import apply_search_values
from tokensweep.spec.source import apply_set, key_lines, load_spec, parse_spec, parse_value, read_spec_text

__all__ = [
    "DATA_ENV",
    "EMBEDDINGS",
    "EPOCH_METRICS",
    "FINAL_METRICS",
    "MEASURED_METRICS",
    "SUPERTOKEN_ONLY",
    "SearchParam",
    "SweepSpec",
    "TrialVariant",
    "apply_search_values",
    "apply_set",
    "key_lines",
    "load_spec",
    "parse_spec",
    "parse_value",
    "read_spec_text",
    "search_trial_name",
]
