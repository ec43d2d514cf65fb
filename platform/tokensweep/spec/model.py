"""What a sweep spec may say (its sections and keys) and what it becomes: the immutable SweepSpec.

Metric names come from `vocab`; trial options, embeddings and knobs from `trials` (TrialConfig and
the model registry): nothing here repeats them.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field

import vocab

MODES = ("max", "min")
DEFAULT_MODES = {f.name: f.better for f in vocab.of_kind(vocab.EPOCH, vocab.FINAL) if f.better}
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")  # sweep names: a directory, a study, an experiment
TRIAL_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.=+,-]{0,119}$")
DATA_ENV = "TOKENSWEEP_DATA"
DEFAULT_MAX_TRIALS = 10_000
WARN_TRIALS = 1_000

SECTIONS = ("sweep", "trial", "grid", "variants", "search", "resources", "scheduler", "failure", "tracking", "bench")
SECTION_KEYS = {
    "sweep": ("name", "description", "metric", "mode", "seeds", "plugins", "max_trials", "smoke", "budget_hours"),
    "search": ("algorithm", "num_samples", "seed", "objectives", "params", "confirm_seeds"),
    "resources": ("cpus", "gpus", "max_concurrent_trials"),
    "scheduler": ("type", "metric", "mode", "grace_period", "reduction_factor", "max_t"),
    "failure": ("max_failures", "keep_checkpoints"),
    "tracking": ("system_metrics", "system_metrics_interval_s"),
    "bench": ("enabled", "batch", "repeats", "steps"),
}
BENCH_REPEATS = 7  # the fewest repeats whose order-statistic interval of the median covers >= 95% ([min, max]: 98.4%)
BENCH_STEPS = 30  # timed steps per architecture and repeat (their median is the repeat's figure)
PARAM_KEYS = ("low", "high", "step", "log", "choices")


# --- the result --------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrialVariant:
    """One grid trial: its name, the TrialConfig values it sets (what Tune carries) and the config
    they were validated as (the driver's MLflow params come from it, without building it again)."""

    name: str
    values: dict
    config: object = field(default=None, repr=False, compare=False)  # trials.TrialConfig


@dataclass(frozen=True)
class SearchParam:
    """One Optuna dimension: an int/float range or a list of choices for a trial option or knob.

    `key` is an option name (`lr`) or an element of a tuple knob (`channels[2]`).
    """

    key: str
    kind: str  # int | float | choice
    low: float | int | None = None
    high: float | int | None = None
    step: float | int | None = None
    log: bool = False
    choices: tuple = ()


@dataclass(frozen=True)
class SweepSpec:
    name: str
    source: str  # the spec file's path, or "<string>"
    text: str  # the spec file's text, as read
    overrides: tuple[str, ...]  # the --set arguments, as given
    description: str = ""
    search: str = "grid"  # grid | optuna
    base: dict = field(default_factory=dict)  # [trial] values (+ platform-set data_dir, threads)
    variants: tuple[TrialVariant, ...] = ()  # grid: every trial
    params: tuple[SearchParam, ...] = ()  # optuna: the space
    num_samples: int = 1
    seed: int | None = None
    objectives: tuple[tuple[str, str], ...] = ()  # optuna: (metric, max|min) ...
    confirm_seeds: tuple[int, ...] = ()  # optuna: re-run the final Pareto set with these seeds
    seeds: tuple[int, ...] = ()  # grid: every configuration once per seed (empty: the trials' own seed)
    plugins: tuple[str, ...] = ()  # modules of user embeddings, imported by the driver and every worker
    smoke: bool = False  # shrunk to the smoke preset (`--smoke` or [sweep] smoke = true)
    metric: str = "top1"
    mode: str = "max"
    cpus: float = 1.0
    gpus: float | None = None  # None: auto (1 when the cluster has GPUs, else 0)
    max_concurrent_trials: int | None = None
    scheduler: str = "fifo"
    scheduler_metric: str = "top1"
    scheduler_mode: str = "max"
    grace_period: int = 1
    reduction_factor: float = 3.0
    max_t: int | None = None
    max_failures: int = 1
    keep_checkpoints: int = 2
    system_metrics: bool = True
    system_metrics_interval_s: float = 10.0
    bench: bool = True  # after the training trials, bench every architecture alone (tokensweep.sweep.bench)
    bench_batch: int | None = None  # None: the trials' bench_batch
    bench_repeats: int = BENCH_REPEATS
    bench_steps: int = BENCH_STEPS
    budget_hours: float | None = None  # device-hours the sweep may spend (tokensweep.plan); None: no budget
    notes: tuple[str, ...] = ()  # what validation has to say (printed once before the sweep)
    resolved: dict = field(default_factory=dict)  # the merged spec document (file + --set), JSON-able

    @property
    def num_trials(self) -> int:
        return len(self.variants) if self.search == "grid" else self.num_samples

    def with_gpus(self, gpus: float) -> "SweepSpec":
        return dataclasses.replace(self, gpus=gpus)

    @property
    def gpu_shared(self) -> bool:
        return self.gpus is not None and 0 < self.gpus < 1
