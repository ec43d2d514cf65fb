"""What a sweep spec may say (its vocabulary) and what it becomes: the immutable SweepSpec."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field

EMBEDDINGS = ("patch", "conv", "supertoken")
SUPERTOKEN_ONLY = ("conv_depth", "extra_conv", "cluster_iters", "channels", "mask_border")
EPOCH_METRICS = ("train_loss", "val_loss", "top1", "top5", "lr", "epoch_time_s")
FINAL_METRICS = (
    "params",
    "embed_params",
    "flops",
    "images_per_sec",
    "train_images_per_sec",
    "peak_mem_mb",
    "joules_per_image",
    "bad_images",
)
MEASURED_METRICS = ("flops", "images_per_sec", "train_images_per_sec", "peak_mem_mb", "joules_per_image")
MODES = ("max", "min")
DEFAULT_MODES = {"train_loss": "min", "val_loss": "min", "epoch_time_s": "min", "flops": "min", "params": "min"}
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")  # sweep names: a directory, a study, an experiment
TRIAL_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.=+,-]{0,119}$")
DATA_ENV = "TOKENSWEEP_DATA"

SECTIONS = ("sweep", "trial", "grid", "variants", "search", "resources", "scheduler", "failure", "tracking")
SECTION_KEYS = {
    "sweep": ("name", "description", "metric", "mode"),
    "search": ("algorithm", "num_samples", "seed", "objectives", "params"),
    "resources": ("cpus", "gpus", "max_concurrent_trials"),
    "scheduler": ("type", "metric", "mode", "grace_period", "reduction_factor", "max_t"),
    "failure": ("max_failures", "keep_checkpoints"),
    "tracking": ("system_metrics", "system_metrics_interval_s"),
}
PARAM_KEYS = ("low", "high", "step", "log", "choices")
INDEXED = re.compile(r"^(?P<key>[a-z_]+)\[(?P<index>\d+)\]$")


# --- the result --------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrialVariant:
    """One grid trial: its name and the TrialConfig values it sets (validated)."""

    name: str
    values: dict


@dataclass(frozen=True)
class SearchParam:
    """One Optuna dimension: an int/float range or a list of choices for a TrialConfig option.

    `key` is an option name (`lr`) or an element of a list option (`channels[2]`).
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
    resolved: dict = field(default_factory=dict)  # the merged spec document (file + --set), JSON-able

    @property
    def num_trials(self) -> int:
        return len(self.variants) if self.search == "grid" else self.num_samples

    def with_gpus(self, gpus: float) -> "SweepSpec":
        return dataclasses.replace(self, gpus=gpus)

    @property
    def gpu_shared(self) -> bool:
        return self.gpus is not None and 0 < self.gpus < 1

    def trial_values(self, values: dict) -> dict:
        """The TrialConfig dict a trial runs: spec values plus what the platform sets."""
        out = dict(values)
        if out.get("threads") is None and self.cpus >= 1:
            out["threads"] = int(self.cpus)  # torch would otherwise use every core of the node
        if self.gpu_shared:
            out["gpu_shared"] = True
        return out
