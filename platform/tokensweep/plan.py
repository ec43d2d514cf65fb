"""What a sweep will cost before it runs: device-hours and wall time, from calibrated speeds.

Per distinct architecture of the sweep (model, knobs, batch, precision, threads, workers, data) one
calibration (trials.measure.calibrate), the first of: a calibration file written by `tokensweep plan
--save-calibration` on the trials' device; measured here when this machine has that device (cached per
(architecture, device model, batch, precision, threads) in $XDG_CACHE_HOME/tokensweep/calibrations);
the medians of earlier finished runs of the architecture on one device model of that kind in the
MLflow store (a RunHistory of tokensweep.tracking.history, handed in). Then, per trial:

    set-up + epochs x (steps x step time + validation + per-epoch reporting) + final measurement

(the first trial of each slot also starts its worker), trials placed in the spec's order on the
free slots (Tune's order), plus the sweep's fixed costs (Ray's start, MLflow, the bench stage). An
Optuna search's trials cost the mean of its space's cheapest and dearest corner; its confirmation
stage runs after it. Device-hours are the trials' time x the devices each holds: GPUs for GPU trials,
else cores. Imports no Ray and writes to no MLflow store.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from statistics import median

from tokensweep.errors import SpecError

# Fixed costs of a local sweep, seconds: measured on the smoke sweep (2 cores; `python -m benchmarks plan`
# prints how far the plan is from the actuals, so a change here shows there)
# Fixed costs as the smoke sweep's recorded phase times (tokensweep.time.*) show them on an idle 2-core machine;
# a loaded machine stretches them (python -m benchmarks plan prints actual / planned beside the load).
SWEEP_FIXED_S = 4.0  # import of Ray and MLflow, the parent run, Ray's shutdown
RAY_START_S = 3.5
WORKER_START_S = 3.0  # a trial slot's worker: a process importing torch (reused by the slot's next trials)
TRIAL_SETUP_S = 0.3  # per trial: its MLflow run, the config handed over, the actor reset (idle 2-core machine)
EPOCH_OVERHEAD_S = 0.3  # per epoch: the checkpoint saved and the result reported
BENCH_START_S = 2.0  # the bench stage's worker
BENCH_ARCH_S = 0.5  # per architecture benched: its model built and warmed up

ON_GPU, ON_CPU = "GPU", "CPU"


@dataclass(frozen=True)
class PlannedTrial:
    name: str
    arch: str  # the key of its architecture row
    trial_s: float
    devices: float  # GPUs (GPU trials) or cores it holds

    @property
    def device_hours(self) -> float:
        return self.trial_s * self.devices / 3600


@dataclass
class Plan:
    sweep: str
    device_kind: str  # GPU | CPU
    slots: int
    trials: list[PlannedTrial]
    architectures: list[dict]
    fixed_s: float
    wall_s: float
    span: dict = field(default_factory=dict)  # optuna: the cheapest and dearest trial of the space
    confirmation: dict = field(default_factory=dict)  # optuna: its front trained again on the confirm seeds
    slots_from: str = "this machine"  # what the slots were counted on: --gpus / --cpus, the cluster at ADDRESS

    @property
    def device_hours(self) -> float:
        return sum(t.device_hours for t in self.trials)

    def planned_hours(self) -> dict[str, float]:
        """Trial name -> planned device-hours (grid trials; a search's trials are named as Tune runs them)."""
        return {t.name: t.device_hours for t in self.trials}

    def to_json(self) -> dict:
        return {
            "sweep": self.sweep,
            "trials": len(self.trials),
            "device": self.device_kind,
            "slots": self.slots,
            "slots_from": self.slots_from,
            "device_hours": self.device_hours,
            "wall_s": self.wall_s,
            "fixed_s": self.fixed_s,
            "architectures": self.architectures,
            "per_trial": [{**asdict(t), "device_hours": t.device_hours} for t in self.trials],
            **({"span": self.span} if self.span else {}),
            **({"confirmation": self.confirmation} if self.confirmation else {}),
        }

    def lines(self) -> list[str]:
        unit = "GPU-hours" if self.device_kind == ON_GPU else "core-hours"
        out = [f"plan {self.sweep!r}: {len(self.trials)} trial(s) on {self.slots} {self.device_kind} slot(s) ({self.slots_from})"]
        width = max(len(a["name"]) for a in self.architectures)
        out.append(f"  {'architecture':<{width}}  {'train img/s':>11}  {'loader img/s':>12}  {'trial':>9}  source")
        for a in self.architectures:
            out.append(f"  {a['name']:<{width}}  {a['train_images_per_sec']:>11,.0f}  {a['loader_images_per_sec']:>12,.0f}  "
                       f"{_duration(a['trial_s']):>9}  {a['source']}")  # fmt: skip
        if self.span:
            out.append(f"  search span: {_duration(self.span['cheapest_s'])} to {_duration(self.span['dearest_s'])} per trial")
        if self.confirmation:
            c = self.confirmation
            out.append(f"  confirmation: {c['trials']} trial(s), a front of ~{c['front']} configuration(s) x {c['seeds']} "
                       f"new seed(s) (at most {c['most_trials']}): {c['device_hours']:.3g} {unit}, wall {_duration(c['wall_s'])}")  # fmt: skip
        out.append(f"total: {self.device_hours:.3g} {unit}, wall {_duration(self.wall_s)} "
                   f"(fixed {_duration(self.fixed_s)}: Ray, MLflow, bench)")  # fmt: skip
        return out


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}min"
    return f"{seconds / 3600:.1f}h"


# --- what runs where ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Resources:
    """The cluster the plan is for: --gpus / --cpus, else a running cluster's (--address), else this machine."""

    gpus: int | None = None
    cpus: int | None = None
    cluster: dict = field(default_factory=dict)  # ray.cluster_resources() of the cluster at `address`
    address: str | None = None

    def count(self, kind: str) -> tuple[float, str]:
        """How many GPUs (kind GPU) or CPUs the trials have, and who says so."""
        flag = self.gpus if kind == ON_GPU else self.cpus
        if flag is not None:
            return flag, f"--{kind.lower()}s"
        if self.address is not None:
            return self.cluster.get(kind, 0.0), f"the cluster at {self.address}"
        return (_local_gpus() if kind == ON_GPU else os.cpu_count() or 1), "this machine"


def device_kind(spec, resources: Resources) -> str:
    if spec.gpus is not None:
        return ON_GPU if spec.gpus > 0 else ON_CPU
    return ON_GPU if resources.count(ON_GPU)[0] > 0 else ON_CPU  # auto


# Device files a GPU's driver creates (NVIDIA; AMD's ROCm; WSL's): none of them, no GPU torch could use.
GPU_DEVICE_FILES = ("/dev/nvidiactl", "/dev/kfd", "/dev/dxg")


def _local_gpus() -> int:
    """This machine's GPUs as torch counts them; without torch's import (~1 s) where no GPU driver is there."""
    if not any(os.path.exists(f) for f in GPU_DEVICE_FILES):
        return 0
    import torch

    return torch.cuda.device_count()


def slots_of(spec, resources: Resources, kind: str) -> int:
    if kind == ON_GPU:
        gpus, where = resources.count(ON_GPU)
        per_trial = spec.gpus or 1.0
        if gpus < per_trial:
            raise SpecError(f"the trials use GPUs (resources.gpus = {per_trial:g} each) but {where} has "
                            f"{gpus:g}: pass --gpus N, the GPUs of the cluster they will run on")  # fmt: skip
        slots = int(gpus // per_trial)
    else:
        slots = max(1, int(resources.count(ON_CPU)[0] // spec.cpus))
    return max(1, min(slots, spec.max_concurrent_trials or slots, spec.num_trials))


# --- the trials' configurations ----------------------------------------------------------------


def trial_configs(spec) -> list[tuple[str, object]]:
    """(name, TrialConfig) of every trial: a grid's variants; for a search, its cheapest and dearest corner."""
    if spec.search == "grid":
        return [(v.name, v.config) for v in spec.variants]
    from trials import TrialConfig

    from tokensweep.payload import apply_search_values

    low = {p.key: p.low if p.kind != "choice" else min(p.choices) for p in spec.params}
    high = {p.key: largest(p) for p in spec.params}
    return [(f"{spec.name}-{end}", TrialConfig.from_dict(apply_search_values(spec.base, values)))
            for end, values in (("low", low), ("high", high))]  # fmt: skip


def largest(p):
    """The largest value a search parameter can take (a range's last step may fall short of its high)."""
    if p.kind == "choice":
        return max(p.choices)
    return p.low + (p.high - p.low) // p.step * p.step if p.step else p.high


def arch_name(config) -> str:
    knobs = ",".join(f"{k}={v}" for k, v in sorted(config.knobs.items()))
    return f"{config.model}{'-' + knobs if knobs else ''}"


def arch_key(config) -> dict:
    """What a calibration is valid for, besides the device model."""
    return {"model": config.model, "knobs": {k: config.knobs[k] for k in sorted(config.knobs)},
            "img_size": config.spec.img_size, "batch": config.batch_size, "precision": config.precision,
            "threads": config.threads, "workers": config.loader_workers, "dataset": config.dataset,
            "data_dir": config.data_dir, "measure": config.measure, "bench_batch": config.bench_batch}  # fmt: skip


# --- calibrations: a file, the cache, or measured now --------------------------------------------


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tokensweep" / "calibrations"


def read_calibration_file(path: str) -> list[dict]:
    try:
        entries = json.loads(Path(path).read_text())["calibrations"]
    except FileNotFoundError:
        raise SpecError(f"--calibration {path}: no such file (write one with `tokensweep plan SPEC --save-calibration FILE`)") from None
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise SpecError(f"--calibration {path}: not a calibration file ({type(err).__name__}: {err}); "
                        "write one with `tokensweep plan SPEC --save-calibration FILE`") from None  # fmt: skip
    if not isinstance(entries, list) or not all(isinstance(e, dict) and "key" in e for e in entries):
        raise SpecError(f"--calibration {path}: 'calibrations' must be a list of entries with a 'key'")
    return entries


def _portable(key: dict) -> dict:
    """A key that matches across machines: not where the data lies, nor its threads on a GPU node."""
    return {k: v for k, v in key.items() if k not in ("data_dir", "threads", "workers")}


def calibration_for(config, kind: str, entries: list[dict], history=None):
    """(Calibration, source) for one architecture: a file's entry, else the cache or measured here when this
    machine has the trials' device, else earlier runs in the MLflow store (`history`: a RunHistory)."""
    from trials.measure.calibration import Calibration

    key = arch_key(config)
    for entry in entries:
        if _portable(entry["key"]) == _portable(key):
            try:
                calibration = Calibration.from_dict(entry["calibration"])
            except (KeyError, TypeError) as err:
                raise SpecError(f"the calibration file's {arch_name(config)} lacks {err}: write it again with "
                                "`tokensweep plan SPEC --save-calibration FILE`") from None  # fmt: skip
            if (kind == ON_GPU) == calibration.device.startswith("cpu"):
                raise SpecError(f"the calibration file's {arch_name(config)} was measured on {calibration.device!r}, "
                                f"but the trials run on the {kind}: calibrate on the trials' device")  # fmt: skip
            return calibration, "file"
    if _here_kind() == kind:
        return _cached_or_measured(config, key, kind)
    found = history_calibration(config, kind, history) if history is not None else None
    if found is None:
        store = f", nor has the MLflow store {history.where()} finished runs of it on one" if history is not None else ""
        raise SpecError(f"{arch_name(config)}: the trials run on the {kind} and this machine has none to calibrate on{store}: "
                        "pass --calibration FILE, written by `tokensweep plan SPEC --save-calibration FILE` on such a device")  # fmt: skip
    return found


def run_match(config, kind: str) -> tuple[dict, dict]:
    """(params, tags) an earlier trial run of this architecture on a device of `kind` recorded (vocab's names):
    its model and knobs, image size, batch, data set, precision and measurement batch, on a GPU of its own;
    on the CPU also its threads, when the trial sets them."""
    import torch

    from trials.measure.env import resolve_precision
    from vocab.values import as_text

    params = {k: as_text(v) for k, v in config.params().items() if k not in ("epochs", "lr", "seed")}
    precision = resolve_precision(config.precision, torch.device("cuda" if kind == ON_GPU else "cpu"))
    tags = {"precision": precision, "bench_batch": as_text(config.bench_batch), "gpu_shared": "false"}
    if kind == ON_CPU and config.threads:
        tags["threads"] = as_text(config.threads)
    return params, tags


def history_calibration(config, kind: str, history):
    """(Calibration, "mlflow: N runs") from the medians of the earlier runs of this architecture on one device
    model of `kind` (the model with the most runs), else None. A step is bounded by the runs' training rate
    and by the rate their epochs trained at (loading included); set-up and the final measurement are the
    runs' wall time beyond their epochs."""
    from trials.measure.calibration import Calibration

    params, tags = run_match(config, kind)
    runs = [r for r in history.speeds(params, tags)
            if r.device.startswith("cpu:") == (kind == ON_CPU) and r.train_images and r.val_images]  # fmt: skip
    if not runs:
        return None
    by_device = {d: [r for r in runs if r.device == d] for d in sorted({r.device for r in runs})}
    device, same = max(by_device.items(), key=lambda item: len(item[1]))
    train = median(r.train_images_per_sec for r in same)
    epoch_rates = [r.epoch_images_per_sec for r in same if r.epoch_images_per_sec]
    beyond_epochs = [max(0.0, r.wall_s - r.epochs * (r.epoch_time_s + EPOCH_OVERHEAD_S) - TRIAL_SETUP_S)
                     for r in same if r.epoch_time_s]  # fmt: skip
    calibration = Calibration(
        device=device, batch=config.batch_size, precision=tags["precision"],
        threads=config.threads or 0,
        workers=max(1, config.loader_workers),  # the epochs' rate holds the loading: a step is the slower of the two
        train_images_per_sec=train, eval_images_per_sec=median(r.images_per_sec for r in same),
        loader_images_per_sec=median(epoch_rates) if epoch_rates else train,
        setup_s=median(beyond_epochs) if beyond_epochs else 0.0, measure_s=0.0,
        train_images=int(median(r.train_images for r in same)), val_images=int(median(r.val_images for r in same)),
    )  # fmt: skip
    return calibration, f"mlflow: {len(same)} run{'s' if len(same) > 1 else ''}"


def _here_kind() -> str:
    return ON_GPU if _local_gpus() > 0 else ON_CPU


def _cached_or_measured(config, key: dict, kind: str):
    """The cached calibration of `config` on this machine's device of `kind`, else one measured now (torch: a
    cached one on the CPU needs none)."""
    from trials.measure.calibration import Calibration
    from vocab.atomic import write_text_atomic

    full = {**key, "device": _device_here(config, kind)}
    path = cache_dir() / f"{hashlib.sha256(json.dumps(full, sort_keys=True).encode()).hexdigest()[:20]}.json"
    try:
        return Calibration.from_dict(json.loads(path.read_text())["calibration"]), "cache"
    except (OSError, ValueError, KeyError, TypeError):
        pass  # none yet, or unreadable: measured again
    from trials.measure.calibrate import calibrate

    calibration = calibrate(config)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps({"key": full, "calibration": calibration.to_dict()}))
    return calibration, "measured"


def _device_here(config, kind: str) -> str:
    """The device model `config`'s trial runs on here (trials.measure.env.device_name). On the CPU of a machine
    without GPUs (kind is this machine's) "auto" is the CPU as well."""
    from trials.measure.env import cpu_device_name, device_name, resolve_device

    if kind == ON_CPU and config.device in ("auto", "cpu"):
        return cpu_device_name()
    return device_name(resolve_device(config.device))


# --- the estimate ------------------------------------------------------------------------------


def trial_seconds(config, calibration) -> float:
    epoch_s = calibration.epoch_s(config.batch_size, config.max_steps_per_epoch) + EPOCH_OVERHEAD_S
    return TRIAL_SETUP_S + calibration.setup_s + config.epochs * epoch_s + calibration.measure_s


def makespan(durations: list[float], slots: int) -> float:
    """Trials started in order, each on the first slot to come free (what Tune does with equal requests)."""
    free = [0.0] * slots
    for d in durations:
        heapq.heappush(free, heapq.heappop(free) + d)
    return max(free)


def bench_seconds(spec, calibrations: dict) -> float:
    """The bench stage: every architecture's inference timed alone (repeats x steps batches)."""
    if not spec.bench:
        return 0.0
    total = BENCH_START_S
    for calibration, key in calibrations.values():
        batch = spec.bench_batch or key["bench_batch"]
        total += BENCH_ARCH_S + spec.bench_repeats * spec.bench_steps * batch / calibration.eval_images_per_sec
    return total


def plan_sweep(spec, resources: Resources = Resources(), entries: list[dict] = (), history=None) -> tuple[Plan, dict]:
    """The plan, and the calibrations it used (architecture name -> (Calibration, its key)). `history`: a
    RunHistory (tokensweep.tracking.history) for architectures with no other calibration."""
    kind = device_kind(spec, resources)
    slots, slots_from = slots_of(spec, resources, kind), resources.count(kind)[1]
    named = trial_configs(spec)
    calibrations, rows = {}, []
    for _, config in named:
        name = arch_name(config)
        if name not in calibrations:
            calibration, source = calibration_for(config, kind, list(entries), history)
            calibrations[name] = (calibration, arch_key(config))
            rows.append(_row(name, config, calibration, source))
    seconds = [trial_seconds(c, calibrations[arch_name(c)][0]) for _, c in named]
    devices = (spec.gpus or 1.0) if kind == ON_GPU else spec.cpus
    fixed = SWEEP_FIXED_S + RAY_START_S + bench_seconds(spec, calibrations)
    span, confirmation = {}, {}
    if spec.search == "grid":
        trials = _placed([(n, arch_name(c)) for n, c in named], seconds, slots, devices)
        wall = makespan([t.trial_s for t in trials], slots)
    else:  # every trial at the mean of the space's two corners
        span = {"cheapest_s": min(seconds), "dearest_s": max(seconds), "num_samples": spec.num_samples,
                "confirm_seeds": len(spec.confirm_seeds)}  # fmt: skip
        trials, wall, confirmation = _search_trials(spec, sum(seconds) / len(seconds), named[0][1].seed, slots, devices)
    return Plan(spec.name, kind, slots, trials, rows, fixed, fixed + wall, span, confirmation, slots_from), calibrations


def _search_trials(spec, trial_s: float, search_seed: int, slots: int, devices: float) -> tuple[list, float, dict]:
    """An Optuna search's trials, then its confirmation stage's (the expected front x each confirm seed the
    search did not train), the wall time of the two one after the other, and the confirmation's summary."""
    search = _placed([(f"trial {i}", "span") for i in range(spec.num_samples)], [trial_s] * spec.num_samples, slots, devices)
    search_wall = makespan([t.trial_s for t in search], slots)
    seeds = [s for s in spec.confirm_seeds if s != search_seed]
    if not seeds:
        return search, search_wall, {}
    front = min(spec.num_samples, round(expected_front(spec.num_samples, len(spec.objectives))))
    n = front * len(seeds)
    confirm = _placed([(f"confirm {i}", "span") for i in range(n)], [trial_s] * n, slots, devices)
    confirm_wall = makespan([t.trial_s for t in confirm], slots)
    confirmation = {"trials": n, "device_hours": sum(t.device_hours for t in confirm), "wall_s": confirm_wall,
                    "front": front, "seeds": len(seeds), "most_trials": spec.num_samples * len(seeds)}  # fmt: skip
    return search + confirm, search_wall + confirm_wall, confirmation


def _placed(named: list[tuple[str, str]], seconds: list[float], slots: int, devices: float) -> list[PlannedTrial]:
    """(trial name, architecture) with their seconds as PlannedTrials: the first of each slot also starts its worker."""
    return [PlannedTrial(name, arch, s + (WORKER_START_S if i < slots else 0.0), devices)
            for i, ((name, arch), s) in enumerate(zip(named, seconds))]  # fmt: skip


def expected_front(n: int, objectives: int) -> float:
    """The expected number of non-dominated points among n whose objectives are independent and continuous:
    1 for one objective, the harmonic number H_n for two (Bentley, Kung, Schkolnick & Thompson 1978). A
    trade-off's objectives are anti-correlated, which makes its front larger: the budget gate holds the actual."""
    front = [1.0] * (n + 1)
    for _ in range(objectives - 1):
        front = list(itertools.accumulate(front[k] / k if k else 0.0 for k in range(n + 1)))
    return front[n]


def _row(name: str, config, calibration, source: str) -> dict:
    return {"name": name, "model": config.model, "knobs": dict(config.knobs),
            "train_images_per_sec": calibration.train_images_per_sec,
            "loader_images_per_sec": calibration.loader_images_per_sec,
            "eval_images_per_sec": calibration.eval_images_per_sec,
            "trial_s": trial_seconds(config, calibration), "source": source, "device": calibration.device}  # fmt: skip


def calibration_file(used: dict) -> str:
    """The calibrations a plan used, as `--save-calibration` writes them."""
    return json.dumps({"calibrations": [{"key": key, "calibration": c.to_dict()} for c, key in used.values()]}, indent=1)
