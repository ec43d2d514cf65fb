"""The sweep: a validated SweepSpec run on Ray Tune; what the command line decided (RunOptions) and how
the sweep ended (SweepOutcome), declared here because every phase reads or fills them.

    driver.py    Sweep: one sweep and its phases (start, tune, stages, close), the MLflow parent run
    tuner.py     the one place a Tuner is built or restored, for the search and Optuna's confirmation: the
                 grid and Optuna searchers, schedulers, the study's links to MLflow, Tune's state and storage
    budget.py    device-hours: each trial's cost and plan, the budget the searchers (grid, Optuna) hold to
    confirm.py   an Optuna search's front trained again on more seeds
    worker.py    train_trial: what runs in a trial's worker (its checkpoint, a quiet SIGTERM)
    guards.py    one driver per sweep (the lock), Ctrl-C and SIGTERM to the driver, starting or joining Ray
    progress.py  what `tokensweep run` prints while it runs and ends with (the findings), Tune's result files
    bench.py     every architecture benched alone: the measurement, its interval, the record in MLflow, the
                 stage after training, the search's throughput objective, concurrent trials

Importing this package imports nothing heavy (no Ray, MLflow or torch); driver.py imports Ray and MLflow.
"""

from __future__ import annotations

import dataclasses
import os

from tokensweep.errors import SpecError


@dataclasses.dataclass(frozen=True)
class RunOptions:
    tracking_uri: str
    storage: str  # absolute path or URI of Tune's storage root
    address: str | None = None  # None: $RAY_ADDRESS if set, else a new local Ray; "local": always new
    optuna_storage: str | None = None
    resume: bool = False
    fresh: bool = False
    command: str = ""
    verbose: int = 0  # 0: tokensweep's own compact progress (sweep/progress.py); 1-2: Tune's tables instead
    quiet: bool = False  # nothing but the summary
    num_cpus: int | None = None  # local Ray only
    num_gpus: int | None = None  # local Ray only
    plan: object = None  # tokensweep.plan.Plan: each trial's planned device-hours; None when it could not be made

    def tune_path(self, name: str) -> str:
        return self.storage.rstrip("/") + "/" + name

    def ray_address(self) -> str:
        return self.address or os.environ.get("RAY_ADDRESS") or "local"

    def starts_local_ray(self) -> bool:
        return self.ray_address() in ("local", "none")

    def local_cpus(self) -> int:
        """The CPUs a new local Ray offers: --num-cpus, else what this machine has."""
        return self.num_cpus or os.cpu_count() or 1


def check_local_resources(spec, options: RunOptions) -> None:
    """Before Ray starts (and before a plan calibrates): a trial asking more CPUs - or, with --num-gpus, more
    GPUs - than a new local Ray will have could never start (Tune would wait forever); refused in one line.
    (Without --num-gpus, Ray finds the GPUs itself: tokensweep.sweep.guards.resolve_gpus checks them after it starts.)"""
    if not options.starts_local_ray():
        return
    if spec.cpus > options.local_cpus():
        source = "--num-cpus" if options.num_cpus else "this machine's count"
        raise SpecError(
            f"resources.cpus = {spec.cpus:g} per trial, but the local Ray has {options.local_cpus()} CPU(s) ({source}): "
            "no trial could ever start; lower resources.cpus" + ("" if options.num_cpus else " or pass a larger --num-cpus")
        )
    if options.num_gpus and spec.gpus is not None and spec.gpus > options.num_gpus:
        raise SpecError(f"resources.gpus = {spec.gpus:g} per trial, but the local Ray has {options.num_gpus} GPU(s) (--num-gpus): "
                        "no trial could ever start; lower resources.gpus")  # fmt: skip


@dataclasses.dataclass
class TrialOutcome:
    name: str
    status: str  # Tune's: TERMINATED | ERROR | RUNNING | PENDING | PAUSED
    metrics: dict
    reason: str = ""  # an ERROR trial's exception, in one line


@dataclasses.dataclass
class SweepOutcome:
    exit_code: int
    parent_run_id: str | None
    tune_path: str
    trials: list[TrialOutcome]
    timings: dict
    tracking_errors: int = 0
    stages: object = None  # tokensweep.sweep.driver.StageReport: the bench, the findings
    interrupted: str | None = None  # the signal that stopped the sweep (SIGINT, SIGTERM), if one did
    killed: list = dataclasses.field(default_factory=list)  # (run name, epoch reached) of the runs it closed KILLED
    resumable: bool = False  # Tune's saved state is there: `--resume` continues the sweep
    experiment_id: str | None = None  # the sweep's MLflow experiment
    budget_note: str | None = None  # the trials [sweep] budget_hours left unstarted (BudgetGate.summary)
