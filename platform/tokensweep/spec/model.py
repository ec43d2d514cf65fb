"""What a sweep spec may say (its sections and keys) and what it becomes: the immutable SweepSpec.

Metric names come from `vocab`; trial options, embeddings and knobs from `trials` (TrialConfig and
the model registry): nothing here repeats them.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field

import vocab
from trials.config import MAX_SEED, opt

MODES = ("max", "min")
DEFAULT_MODES = {f.name: f.better for f in vocab.of_kind(vocab.EPOCH, vocab.FINAL) if f.better}
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")  # sweep names: a directory, a study, an experiment
TRIAL_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.=+,-]{0,119}$")
DATA_ENV = "TOKENSWEEP_DATA"
DEFAULT_MAX_TRIALS = 10_000
WARN_TRIALS = 1_000

SECTIONS = ("sweep", "trial", "grid", "variants", "search", "resources", "scheduler", "failure", "tracking", "bench")
BENCH_REPEATS = 7  # the fewest repeats whose order-statistic interval of the median covers >= 95% ([min, max]: 98.4%)
BENCH_STEPS = 30  # timed steps per architecture and repeat (their median is the repeat's figure)
PARAM_KEYS = ("low", "high", "step", "log", "choices")


# --- the sections: each key once, with its default, its rule and its help ---------------------------
# A field's metadata says how context.SpecContext.section checks it: minimum/maximum (an integer;
# maximum may name an earlier field), rule + check (a number), choices, metrics, seeds, boolean, string;
# a field with none of these is checked by its section's own code. `unset`: the default is derived.


def mode_of_metric(got: dict) -> str:
    """A mode's default: the direction of the metric read before it."""
    return DEFAULT_MODES.get(got["metric"], "max")


def positive(v) -> bool:
    return v > 0


@dataclass(frozen=True)
class SweepSection:
    name: str = opt(None, "names the MLflow experiment and the Tune run (required)")
    description: str = opt("", "a line about the sweep", string=True)
    metric: str = opt("top1", "the metric the sweep ranks trials by", metrics=vocab.METRICS)
    mode: str = opt(None, "max or min", choices=MODES, unset="the metric's own direction")
    seeds: tuple = opt((), "grid: every configuration once per seed", seeds=True, unset="the trials' own seed")
    plugins: tuple = opt((), "modules of user embeddings, imported by the driver and every worker")
    max_trials: int = opt(DEFAULT_MAX_TRIALS, "the most trials a grid may expand to", minimum=1)
    smoke: bool = opt(False, "write the spec on top of the smoke preset", boolean=True)
    budget_hours: float | None = opt(None, "device-hours the sweep may spend (tokensweep plan)",
                                     rule="a positive number of device-hours (GPU-hours, or core-hours on CPU)",
                                     check=lambda v: math.isfinite(v) and v > 0, unset="no budget")  # fmt: skip


@dataclass(frozen=True)
class SearchSection:
    algorithm: str = opt(None, '"optuna" (required)')
    num_samples: int = opt(10, "trials Optuna samples", minimum=1, maximum=100_000)
    seed: int | None = opt(None, "the sampler's numpy seed", minimum=0, maximum=MAX_SEED)
    objectives: dict = opt(None, 'metric = "max"|"min" (required)')
    params: dict = opt(None, "the search space: option -> low/high/step/log or choices (required)")
    confirm_seeds: tuple = opt((), "re-run the final Pareto set with these seeds", seeds=True)


@dataclass(frozen=True)
class ResourcesSection:
    cpus: float = opt(1.0, "CPUs per trial", rule="a number > 0 (CPUs per trial)", check=positive)
    gpus: float | None = opt(None, "GPUs per trial (< 1 shares a GPU)", rule='a number >= 0 or "auto"',
                             check=lambda v: v >= 0, auto=True, unset="1 when the cluster has GPUs, else 0")  # fmt: skip
    max_concurrent_trials: int | None = opt(None, "the most trials at once", minimum=1, unset="as many as fit")


@dataclass(frozen=True)
class SchedulerSection:
    type: str = opt("fifo", "fifo, or asha (early stopping)", choices=("fifo", "asha"))
    metric: str = opt(None, "the metric asha stops by", metrics=vocab.EPOCH_METRICS, unset="[sweep] metric")
    mode: str = opt(None, "max or min", choices=MODES, unset="the metric's own direction")
    max_t: int | None = opt(None, "the most epochs a trial runs", minimum=1, unset="the trials' epochs")
    grace_period: int = opt(1, "epochs before a trial may be stopped", minimum=1, maximum="max_t")
    reduction_factor: float = opt(3.0, "how many trials each rung keeps one of", rule="a number > 1", check=lambda v: v > 1)


@dataclass(frozen=True)
class FailureSection:
    max_failures: int = opt(1, "retries of a failed trial", minimum=0, maximum=1000)
    keep_checkpoints: int = opt(2, "checkpoints kept per trial", minimum=1, maximum=1000)


@dataclass(frozen=True)
class TrackingSection:
    system_metrics: bool = opt(True, "record CPU/GPU/memory use beside each trial", boolean=True)
    system_metrics_interval_s: float = opt(10.0, "seconds between system metric samples", rule="a number > 0 (seconds)", check=positive)


@dataclass(frozen=True)
class BenchSection:
    enabled: bool = opt(True, "bench every architecture alone after the training trials", boolean=True)
    batch: int | None = opt(None, "images per timed step", minimum=1, maximum=65_536, unset="the trials' bench_batch")
    repeats: int = opt(BENCH_REPEATS, "timed repeats per architecture", minimum=1, maximum=1000)
    steps: int = opt(BENCH_STEPS, "timed steps per repeat (their median is the repeat's figure)", minimum=1, maximum=100_000)


SECTION_TYPES = {"sweep": SweepSection, "search": SearchSection, "resources": ResourcesSection,
                 "scheduler": SchedulerSection, "failure": FailureSection, "tracking": TrackingSection,
                 "bench": BenchSection}  # fmt: skip


def section_keys(section: str) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(SECTION_TYPES[section]))


def section_field(section: str, key: str) -> dataclasses.Field:
    return next(f for f in dataclasses.fields(SECTION_TYPES[section]) if f.name == key)


def section_default(section: str, key: str):
    return section_field(section, key).default


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
    """The validated spec, flat: each section's keys (defaults from its *Section) plus what validation derives."""

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
    metric: str = section_default("sweep", "metric")
    mode: str = "max"
    cpus: float = section_default("resources", "cpus")
    gpus: float | None = None  # None: auto (1 when the cluster has GPUs, else 0)
    max_concurrent_trials: int | None = None
    scheduler: str = section_default("scheduler", "type")
    scheduler_metric: str = section_default("sweep", "metric")
    scheduler_mode: str = "max"
    grace_period: int = section_default("scheduler", "grace_period")
    reduction_factor: float = section_default("scheduler", "reduction_factor")
    max_t: int | None = None
    max_failures: int = section_default("failure", "max_failures")
    keep_checkpoints: int = section_default("failure", "keep_checkpoints")
    system_metrics: bool = section_default("tracking", "system_metrics")
    system_metrics_interval_s: float = section_default("tracking", "system_metrics_interval_s")
    bench: bool = section_default("bench", "enabled")  # after the training trials, bench every architecture alone (tokensweep.sweep.bench)
    bench_batch: int | None = None  # None: the trials' bench_batch
    bench_repeats: int = section_default("bench", "repeats")
    bench_steps: int = section_default("bench", "steps")
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
