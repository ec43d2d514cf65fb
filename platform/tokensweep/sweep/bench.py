"""The bench: every architecture measured alone (the measurement, its interval, the record in MLflow, the stage after training), the search's throughput objective, and how many trials ran beside a measurement.

Architectures: what determines a trial's throughput, so that the bench measures each one once.

An architecture is the model (backbone + embedding), its input size, every knob of its embedding
(defaults included) and the precision it runs in; not the seed, the recipe or the data. Two trials
of one architecture get the same bench figures. The number of classes only sizes the head: the
bench uses the first trial's.

No Ray, MLflow or torch here (`trials.TrialConfig` resolves a model without torch).

The 95% interval of a median over repeats: distribution-free, from order statistics.

With r independent repeats x(1) <= ... <= x(r), the number below the true median is Binomial(r, 1/2),
so [x(k), x(r+1-k)] covers the median with probability 1 - 2 P(Bin(r, 1/2) <= k-1), whatever the
distribution of the figures. We take the largest k whose coverage is still >= 95%. From 6 repeats on
such a k exists (6: [min, max], 96.9%; 7: 98.4%; 9: [x(2), x(8)], 96.1%); with fewer repeats the
interval is [min, max] and its coverage, below 95%, is reported with it. No randomness: the same
figures give the same interval.

The bench's measurement: every architecture of a sweep, side by side, in one process on one device.

It is the trials' own timing protocol (`trials.measure`: `make_inference_step`, the inference-ready
copy of the model, and `time_interleaved`), repeated: each repeat warms up, then alternates the
architectures step by step (in rotated order) for `steps` timed steps each, so a slow spell of the
machine hits every architecture alike. A repeat's figure is its fastest step (`Timing.min_s`): other
programs on the machine only ever add time to a step - on a loaded 2-core machine a 3 ms step is
preempted for a 4 ms scheduler tick more often than not, which makes its median a measure of the
load, not of the model (1 vs 3 clustering iterations came out 2x apart either way) - while the
fastest of 30 steps is what the model costs (the minimum as the robust estimator in noisy
environments: Chen & Revels 2016, timeit). The repeat's median step is kept in the table beside it.
The bench figure is the median over repeats, with the order-statistic 95% interval of that median
(tokensweep.sweep.bench).

CPU steps run with the trials' own torch thread count (the same figure the trials measured, now
without other trials beside it), in a process that holds every CPU of its node, so the cores it does
not use stay idle for the OS and other programs rather than interrupting its steps.

Runs in a Ray task on a cluster (`tokensweep.sweep.bench`) or in the `tokensweep bench --sweep`
process; no Ray or MLflow here, torch only once called.

An Optuna search's throughput objective, measured as the bench measures: each architecture alone.

A trial measures images/sec while the other trials of its node train beside it, and that figure
moves with them (2.4x apart for one architecture). So before a search trial's last report, its
architecture is benched with the bench's protocol (tokensweep.sweep.bench) on the trial's
own device while the node's other trials are held back, and the last report carries that figure
as `search_images_per_sec`: the key Optuna scores for the `images_per_sec` objective, and the
figure `tokensweep dashboard` plots for the sweep (the `throughput_source` tag names it). The
in-trial `images_per_sec` stays recorded beside it.

Holding back: every trial of the sweep holds the node's steps lock shared around each step
(`trials.run_trial`'s step_guard); a bench takes it exclusively, so it waits for the steps in
flight to end and no new one starts until it is done. A gate lock in front keeps a stream of
shared steps from starving it: a step passes the gate (a moment's shared hold) before taking the
steps lock, and a bench holds the gate exclusively while it waits and measures. Both are flock(2)
locks on files in the node's temp directory, named by the sweep's parent run: the kernel drops
them when a process dies, so a killed trial never leaves the node locked.

Each architecture is benched once per node and sweep: the figure is kept in a file of that
directory (keyed by architecture, device, batch, threads, repeats and steps) and reused by every
later trial of the architecture, confirmation trials included.

Where trials share a GPU (fractional `gpus`) no lock empties the GPU of the others' memory and
contexts: isolation is impossible, Optuna is told the in-trial figure, and the study
(its `throughput` attribute), the runs (`throughput_source`) and the dashboard (shared GPU) say so.

No Ray or MLflow here; torch only when a bench runs.

A bench in MLflow, written through the sweep's SweepTracker (the one writer).

    parent run  bench/architectures.json   every architecture of the sweep and the child runs of each
                bench/<bench_id>.json, .csv one table per bench; a later bench adds its own, never rewrites one
                tags tokensweep.benches (how many benches were started), and for the sweep's own stage
                tokensweep.bench_stage (its bench_id), tokensweep.bench_status, tokensweep.bench_failure
    child run   metrics bench_images_per_sec, bench_images_per_sec_ci_low, _ci_high at step n, n being the
                bench's number on the sweep (bench_id "n-<hex>"): the metric history keeps every bench and
                the latest is the run's value; tags bench_id and bench_device (the latest bench's) and
                tokensweep.bench_steps, {n: bench_id} of every bench logged to the run.

Every write is idempotent (a child that has a bench's step is not written again), so a stage killed
half-way through recording is finished by running it again.

`concurrent_trials`: how many other trials of the sweep ran on a trial's node while it measured.

Every report of a trial carries when its attempt started and when it reported, and its last report
when it measured (tokensweep.sweep.worker.MeasureWindow); Tune keeps every report in the trial's
result.json. After the training trials end, the driver reads them back and, for each trial that
measured, counts the most other trials that ran at once on the same Ray node during that window. Read
from Tune's storage, so a driver killed and resumed counts the trials of its earlier sessions too.

The bench stage: after a sweep's training trials end, every distinct architecture benched alone.

On the sweep's Ray cluster the measurement (tokensweep.sweep.bench) is one Ray task that
holds a whole node: every GPU and CPU of a GPU node when the trials trained on GPUs, else every CPU
of the node with the most; the training trials have ended, so nothing else of the sweep runs there.
`tokensweep bench --sweep NAME` runs the same measurement in its own process, later and elsewhere
(another GPU): a new bench of the same sweep, recorded beside the earlier ones.

The stage is part of the sweep's record (tokensweep.sweep.bench): the parent run's tags say
where it got to, so a driver killed during it resumes it with `tokensweep run --resume` (a measured
table is recorded, not measured again; runs already written are not written twice), and a failure is
a tag on the parent run and a non-zero exit, the training results untouched.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import hashlib
import io
import json
import logging
import math
import os
import secrets
import socket
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from mlflow.entities import Metric, RunTag

from tokensweep.errors import SpecError
from tokensweep.payload import SearchSettings
from tokensweep.tracking import tags as T
from tokensweep.tracking.store import mlflow_error, quote, redact


@dataclass(frozen=True)
class Architecture:
    arch_id: str
    model: str  # vit_<backbone>_<embedding>
    img_size: int
    knobs: dict  # every knob of the embedding, JSON values (tuples as lists)
    precision: str  # the trials' setting: auto | fp32 | bf16 | fp16 (auto resolves on the bench device)
    num_classes: int
    threads: int | None  # the trials' torch threads: the bench times CPU steps with the same count
    bench_batch: int  # the trials' measurement batch
    label: str = ""  # readable: the model and what differs between the sweep's architectures

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "Architecture":
        return cls(**data)

    def model_overrides(self) -> dict:
        """The `trials.create_model` overrides that build it."""
        return {"img_size": self.img_size, "num_classes": self.num_classes, **self.knobs}


def _jsonable(value):
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    return value


def classes_of(config) -> int:
    """The trial's classes where the config says (generated data, ImageNet-100); else the backbone's."""
    if config.dataset == "tiny":
        return config.tiny_classes
    if config.dataset == "imagenet100":
        return 100
    return config.spec.backbone.num_classes


def arch_key(config) -> dict:
    spec = config.spec
    knobs = {k: _jsonable(v) for k, v in sorted(spec.knobs.items())}
    return {"model": spec.name, "img_size": spec.img_size, "knobs": knobs, "precision": config.precision}


def arch_id_of(config) -> str:
    """The same for every trial whose model, input size, knobs and precision are the same."""
    return hashlib.sha256(json.dumps(arch_key(config), sort_keys=True).encode()).hexdigest()[:12]


def architecture_of(config) -> Architecture:
    key = arch_key(config)
    return Architecture(arch_id_of(config), key["model"], key["img_size"], key["knobs"], key["precision"],
                        classes_of(config), config.threads, config.bench_batch)  # fmt: skip


def distinct_architectures(configs) -> list[Architecture]:
    """One Architecture per distinct arch_id, in first-seen order, labelled by what differs between them."""
    archs: dict[str, Architecture] = {}
    for config in configs:
        arch = architecture_of(config)
        archs.setdefault(arch.arch_id, arch)
    return label_architectures(list(archs.values()))


def label_architectures(archs: list[Architecture]) -> list[Architecture]:
    """'vit_tiny_supertoken cluster_iters=1': the model, then each knob, size or precision that varies."""
    import dataclasses

    def varies(get) -> bool:
        return len({json.dumps(get(a), sort_keys=True) for a in archs}) > 1

    out = []
    for a in archs:
        parts = [a.model]
        same_model = [b for b in archs if b.model == a.model]
        for k in sorted(a.knobs):
            if len({json.dumps(b.knobs.get(k)) for b in same_model}) > 1:
                parts.append(f"{k}={_fmt(a.knobs[k])}")
        if varies(lambda b: b.img_size):
            parts.append(f"img_size={a.img_size}")
        if varies(lambda b: b.precision):
            parts.append(a.precision)
        out.append(dataclasses.replace(a, label=" ".join(parts)))
    return out


def _fmt(value) -> str:
    if isinstance(value, list):
        return "-".join(_fmt(v) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


CONFIDENCE = 0.95
METHOD = "order statistics of the median over repeats (binomial)"


@dataclass(frozen=True)
class MedianInterval:
    median: float
    low: float
    high: float
    coverage: float  # the interval's exact coverage of the median (>= 0.95 from 6 repeats on)
    n: int


def coverage(r: int, k: int) -> float:
    """P(x(k) <= median <= x(r+1-k)) for r repeats: 1 - 2 P(Bin(r, 1/2) <= k - 1)."""
    below = sum(math.comb(r, i) for i in range(k))
    return 1.0 - 2.0 * below / 2**r


def order_index(r: int, confidence: float = CONFIDENCE) -> int:
    """The largest k >= 1 with coverage(r, k) >= confidence (1 when none reaches it)."""
    k = 1
    while k + 1 <= (r + 1) // 2 and coverage(r, k + 1) >= confidence:
        k += 1
    return k


def median_interval(values, confidence: float = CONFIDENCE) -> MedianInterval:
    xs = sorted(float(v) for v in values)
    if not xs:
        raise ValueError("no values")
    r = len(xs)
    k = order_index(r, confidence)
    return MedianInterval(statistics.median(xs), xs[k - 1], xs[r - k], coverage(r, k), r)


WARMUP = 5  # untimed rounds per repeat: first-call costs (allocations, oneDNN primitives, CUDA kernels) stay out


def measure(archs: list[dict], settings: dict, plugins: tuple[str, ...] = ()) -> dict:
    """The bench table: per architecture, every repeat's images/sec, their median and its interval.

    settings: device (auto|cpu|cuda), batch (None: each architecture's bench_batch), repeats, steps,
    threads (None: the architectures' own; torch's when they have none).
    """
    import trials
    from trials.measure import cpu_threads, environment, make_inference_step, resolve_device, resolve_precision, time_interleaved

    for module in plugins:  # the user's embeddings, as the trials loaded them
        trials.load_plugin(module)
    architectures = [Architecture.from_json(a) for a in archs]
    device = resolve_device(settings.get("device", "auto"))
    threads = settings.get("threads") or max((a.threads or 0 for a in architectures), default=0) or None
    started = time.time()
    with cpu_threads(threads if device.type == "cpu" else None):
        steps, batches, precisions = {}, {}, {}
        for arch in architectures:
            model = trials.create_model(arch.model, **arch.model_overrides()).to(device)
            batches[arch.arch_id] = settings.get("batch") or arch.bench_batch
            precisions[arch.arch_id] = resolve_precision(arch.precision, device)
            steps[arch.arch_id] = make_inference_step(model, arch.img_size, batches[arch.arch_id], device, precisions[arch.arch_id])
        figures: dict[str, list[float]] = {a: [] for a in steps}
        medians: dict[str, list[float]] = {a: [] for a in steps}
        for _ in range(settings["repeats"]):
            timings = time_interleaved(steps, device, warmup=WARMUP, steps=settings["steps"])
            for arch_id, timing in timings.items():
                figures[arch_id].append(batches[arch_id] / timing.min_s)
                medians[arch_id].append(timing.per_sec(batches[arch_id]))
        env = environment(device, "fp32", 0)
    rows = []
    for arch in architectures:
        interval = median_interval(figures[arch.arch_id])
        rows.append({
            "arch_id": arch.arch_id, "label": arch.label, "model": arch.model, "img_size": arch.img_size,
            "knobs": arch.knobs, "precision": precisions[arch.arch_id], "batch": batches[arch.arch_id],
            "images_per_sec": interval.median, "ci_low": interval.low, "ci_high": interval.high,
            "coverage": interval.coverage, "repeat_images_per_sec": figures[arch.arch_id],
            "repeat_median_step_images_per_sec": medians[arch.arch_id],
        })  # fmt: skip
    return {
        "device": env["device"],
        "device_type": device.type,
        "threads": env["threads"],
        "torch_version": env["torch_version"],
        "hostname": socket.gethostname(),
        "repeats": settings["repeats"],
        "steps": settings["steps"],
        "warmup": WARMUP,
        "interval": METHOD,
        "started_at": started,
        "ended_at": time.time(),
        "rows": rows,
    }


OBJECTIVE = "images_per_sec"  # the objective this module answers for
FIGURE = "search_images_per_sec"  # what Optuna is told for it, when the trials can be held back
SOURCE = "throughput_source"  # the run's tag: the column Optuna scored (FIGURE, or OBJECTIVE on a shared GPU)
ISOLATED = "images_per_sec: each architecture benched alone on its trial's node (the bench's protocol) before its last report"
SHARED = "images_per_sec: measured inside each trial while trials shared its GPU (fractional gpus): other trials slowed it"


def settings_of(spec, sweep_id: str) -> SearchSettings | None:
    """None for a grid, or a search without the throughput objective."""
    if spec.search != "optuna" or OBJECTIVE not in dict(spec.objectives):
        return None
    return SearchSettings(sweep_id, not spec.gpu_shared, spec.bench_batch, spec.bench_repeats, spec.bench_steps)


def reported_key(metric: str, settings: SearchSettings | None) -> str:
    """The key of a trial's last report that holds `metric`'s value for the searcher."""
    return FIGURE if metric == OBJECTIVE and settings is not None and settings.isolated else metric


def study_note(settings: SearchSettings | None) -> str | None:
    """How the study's images_per_sec was measured, for its `throughput` user attribute."""
    if settings is None:
        return None
    return ISOLATED if settings.isolated else SHARED


class NodeLock:
    """The node's two locks for one sweep (see the module's docstring)."""

    def __init__(self, sweep_id: str):
        self.directory = Path(tempfile.gettempdir(), f"tokensweep-search-{os.getuid()}", _safe(sweep_id))
        self.directory.mkdir(parents=True, exist_ok=True)
        self._gate = os.open(self.directory / "gate.lock", os.O_RDWR | os.O_CREAT, 0o600)
        self._steps = os.open(self.directory / "steps.lock", os.O_RDWR | os.O_CREAT, 0o600)

    @contextlib.contextmanager
    def step(self):
        """A trial's step: waits while an architecture is benched, runs beside the other steps."""
        fcntl.flock(self._gate, fcntl.LOCK_SH)
        try:
            fcntl.flock(self._steps, fcntl.LOCK_SH)
        finally:
            fcntl.flock(self._gate, fcntl.LOCK_UN)
        try:
            yield
        finally:
            fcntl.flock(self._steps, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def alone(self):
        """The node to itself: no step of the sweep's trials runs until it is left.

        Own descriptors: flock locks belong to the open file, so this process's step lock (never held
        while it benches) and this exclusive one stay apart."""
        gate = os.open(self.directory / "gate.lock", os.O_RDWR)
        steps = os.open(self.directory / "steps.lock", os.O_RDWR)
        try:
            fcntl.flock(gate, fcntl.LOCK_EX)
            fcntl.flock(steps, fcntl.LOCK_EX)
            yield
        finally:
            os.close(steps)  # closing the last descriptor of an open file releases its lock
            os.close(gate)

    def close(self) -> None:
        os.close(self._gate)
        os.close(self._steps)


class TrialThroughput:
    """One trial's side of it: the node's lock held shared around its steps, and the figures its last
    report adds. Nothing for a grid's trial (settings None)."""

    def __init__(self, settings: SearchSettings | None, config, plugins: tuple[str, ...] = ()):
        self.settings, self.config, self.plugins = settings, config, plugins
        isolated = settings is not None and settings.isolated
        self.lock = NodeLock(settings.sweep) if isolated else None
        self._figures: dict | None = None

    def step(self):
        return self.lock.step() if self.lock is not None else contextlib.nullcontext()

    def add_to(self, metrics: dict) -> dict:
        """The last report's metrics (those with the in-trial images_per_sec) with the searcher's figure:
        `throughput_source` and `search_images_per_sec`, benched (or looked up) once; other reports as they are."""
        if self.settings is None or OBJECTIVE not in metrics:
            return metrics
        if self._figures is None:
            source = reported_key(OBJECTIVE, self.settings)
            self._figures = {SOURCE: source}
            if self.lock is not None:
                self._figures[source] = measured_alone(self.config, self.settings, self.lock, self.plugins)
        return {**metrics, **self._figures}

    def reported_keys(self, objectives) -> list[str]:
        return [reported_key(m, self.settings) for m in objectives]

    def close(self) -> None:
        if self.lock is not None:
            self.lock.close()


def measured_alone(config, settings: SearchSettings, lock: NodeLock, plugins: tuple[str, ...] = ()) -> float:
    """The trial's architecture's images/sec, benched alone on the trial's device, or this node's earlier figure."""
    from trials.measure import device_name, resolve_device

    arch = architecture_of(config)
    bench = {"device": config.device, "batch": settings.batch, "repeats": settings.repeats, "steps": settings.steps}
    key = {**bench, "arch_id": arch.arch_id, "device_name": device_name(resolve_device(config.device)), "threads": config.threads}
    cache = lock.directory / f"{hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]}.json"
    figure = _cached(cache)
    if figure is None:
        with lock.alone():
            figure = _cached(cache)  # benched by another trial while this one waited
            if figure is None:
                (row,) = measure([arch.to_json()], bench, plugins)["rows"]
                figure = float(row["images_per_sec"])
                _write_atomic(cache, json.dumps({**key, FIGURE: figure}))
    return figure


def _cached(path: Path) -> float | None:
    try:
        return float(json.loads(path.read_text())[FIGURE])
    except (FileNotFoundError, ValueError, KeyError):
        return None


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)[:64] or "sweep"


ARCHITECTURES = "bench/architectures.json"
METRICS = ("bench_images_per_sec", "bench_images_per_sec_ci_low", "bench_images_per_sec_ci_high")
ROW_FIGURES = ("images_per_sec", "ci_low", "ci_high")  # the table's columns behind METRICS
CSV_COLUMNS = ("bench_id", "step", "arch_id", "label", "model", "img_size", "knobs", "precision", "batch",
               "images_per_sec", "ci_low", "ci_high", "coverage", "repeats", "steps", "threads", "device",
               "repeat_images_per_sec")  # fmt: skip


def table_path(bench_id: str, ext: str = "json") -> str:
    return f"bench/{bench_id}.{ext}"


def bench_step(bench_id: str) -> int:
    return int(bench_id.split("-", 1)[0])


def child_runs(tracker) -> list:
    """Every trial run of the sweep's parent run."""
    return tracker.client.search_runs(
        [tracker.experiment_id],
        filter_string=f"tags.`{T.PARENT}` = {quote(tracker.parent_run_id)} and tags.`{T.ROLE}` = 'trial'",
        max_results=50_000,
    )


def write_architectures(tracker, archs: list[Architecture], runs_by_arch: dict[str, list[str]], runs: list,
                        plugins: tuple[str, ...] = ()) -> None:  # fmt: skip
    """The sweep's architectures on the parent run (with the plugin modules that build them), each child's arch_id tag."""
    doc = {
        "architectures": [{**a.to_json(), "runs": runs_by_arch.get(a.arch_id, [])} for a in archs],
        "plugins": list(plugins),
    }
    tracker.client.log_dict(tracker.parent_run_id, doc, ARCHITECTURES)
    arch_of = {run_id: arch_id for arch_id, ids in runs_by_arch.items() for run_id in ids}
    for run in runs:
        arch_id = arch_of.get(run.info.run_id)
        if arch_id and run.data.tags.get(T.ARCH_ID) != arch_id:
            tracker.tag(run.info.run_id, **{T.ARCH_ID: arch_id})


def read_architectures(tracker) -> tuple[list[Architecture], dict[str, list[str]], tuple[str, ...]] | None:
    """(architectures, their child runs, plugin modules) as the stage recorded them; None if it never did."""
    doc = read_json(tracker, ARCHITECTURES)
    if doc is None:
        return None
    archs = [Architecture.from_json({k: v for k, v in a.items() if k != "runs"}) for a in doc["architectures"]]
    return archs, {a["arch_id"]: list(a["runs"]) for a in doc["architectures"]}, tuple(doc.get("plugins", ()))


def new_bench_id(tracker) -> str:
    """The next bench of the sweep: 'n-<hex>', n counted on the parent run (tokensweep.benches)."""
    n = int(tracker.tags_of(tracker.parent_run_id).get(T.BENCHES, "0")) + 1
    tracker.tag(tracker.parent_run_id, **{T.BENCHES: n})
    return f"{n}-{secrets.token_hex(4)}"


def read_json(tracker, path: str) -> dict | None:
    folder, _, name = path.rpartition("/")
    if name not in {os.path.basename(f.path) for f in tracker.client.list_artifacts(tracker.parent_run_id, folder)}:
        return None
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no progress bar for one small file
    with tempfile.TemporaryDirectory() as tmp:
        local = tracker.client.download_artifacts(tracker.parent_run_id, path, tmp)
        with open(local) as f:
            return json.load(f)


def load_table(tracker, bench_id: str) -> dict | None:
    return read_json(tracker, table_path(bench_id))


def save_table(tracker, table: dict) -> None:
    """The bench's table on the parent run, as JSON (everything) and CSV (one flat row per architecture)."""
    tracker.client.log_text(tracker.parent_run_id, to_csv(table), table_path(table["bench_id"], "csv"))
    tracker.client.log_dict(tracker.parent_run_id, table, table_path(table["bench_id"]))  # last: its presence means done


def to_csv(table: dict) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    common = {k: table[k] for k in ("bench_id", "step", "repeats", "steps", "threads", "device")}
    for row in table["rows"]:
        writer.writerow({**common, **row, "knobs": json.dumps(row["knobs"], sort_keys=True),
                         "repeat_images_per_sec": " ".join(f"{v:.6g}" for v in row["repeat_images_per_sec"])})  # fmt: skip
    return buf.getvalue()


def record_on_children(tracker, table: dict, runs_by_arch: dict[str, list[str]], runs: list) -> int:
    """The bench's figures on every child run of each architecture it measured; returns the runs written."""
    bench_id, step = table["bench_id"], table["step"]
    by_id = {r.info.run_id: r for r in runs}
    written, now = 0, int(time.time() * 1000)
    for row in table["rows"]:
        for run_id in runs_by_arch.get(row["arch_id"], []):
            run = by_id.get(run_id)
            if run is None:
                continue
            steps = json.loads(run.data.tags.get(T.BENCH_STEPS, "{}"))
            if bench_id in steps.values():
                continue  # written before (a resumed stage)
            steps[str(step)] = bench_id
            latest = max(int(s) for s in steps) == step  # tags name the latest bench; an older one only adds history
            tags = {T.BENCH_STEPS: json.dumps(steps, sort_keys=True)}
            if latest:
                tags.update({"bench_id": bench_id, "bench_device": table["device"]})
            tracker.client.log_batch(
                run_id,
                metrics=[Metric(m, float(row[c]), now, step) for m, c in zip(METRICS, ROW_FIGURES)],
                tags=[RunTag(k, v) for k, v in tags.items()],
            )
            written += 1
    return written


log = logging.getLogger(__name__)
METRIC = "concurrent_trials"


@dataclass(frozen=True)
class Attempt:
    trial_id: str
    node: str
    start: float
    end: float  # its last report


@dataclass(frozen=True)
class Measurement:
    trial_id: str
    node: str
    start: float
    end: float
    epoch: int


def trial_results(trial) -> list[dict]:
    """Every report of a Tune trial, from the result.json in its storage (local or s3)."""
    fs, path = trial.storage.storage_filesystem, Path(trial.storage.trial_fs_path, "result.json").as_posix()
    try:
        with fs.open_input_stream(path) as f:
            text = f.readall().decode("utf-8")
    except (FileNotFoundError, OSError):
        return []
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def attempts_of(trial_id: str, results: list[dict]) -> list[Attempt]:
    by_start: dict[float, list[dict]] = {}
    for r in results:
        if "_started_at" in r and "_reported_at" in r and r.get("ray_node_id"):
            by_start.setdefault(float(r["_started_at"]), []).append(r)
    return [
        Attempt(trial_id, rs[-1]["ray_node_id"], start, max(float(r["_reported_at"]) for r in rs))
        for start, rs in by_start.items()
    ]


def measurement_of(trial_id: str, results: list[dict]) -> Measurement | None:
    last = next((r for r in reversed(results) if "_measured_from" in r and r.get("ray_node_id")), None)
    if last is None:
        return None
    epoch = int(last.get("epoch") or last.get("training_iteration") or 0)
    return Measurement(trial_id, last["ray_node_id"], float(last["_measured_from"]), float(last["_measured_to"]), epoch)


def concurrent(measurement: Measurement, attempts: list[Attempt]) -> int:
    """The most other trials running at once on the measurement's node during its window (a trial that
    ended and the one that took its place count once: they never ran at the same time)."""
    events = []
    for a in attempts:
        if a.trial_id != measurement.trial_id and a.node == measurement.node:
            start, end = max(a.start, measurement.start), min(a.end, measurement.end)
            if start < end:
                events += [(start, 1), (end, -1)]
    running = most = 0
    for _, step in sorted(events):  # at equal times an end (-1) sorts before a start (+1)
        running += step
        most = max(most, running)
    return most


def count_concurrent(results_by_trial: dict[str, list[dict]]) -> dict[str, tuple[int, int]]:
    """trial_id -> (concurrent_trials, the epoch it measured at), for every trial that measured."""
    attempts = [a for tid, rs in results_by_trial.items() for a in attempts_of(tid, rs)]
    out = {}
    for tid, rs in results_by_trial.items():
        m = measurement_of(tid, rs)
        if m is not None:
            out[tid] = (concurrent(m, attempts), m.epoch)
    return out


def record_concurrent_trials(tracker, tune_trials, runs: list) -> int:
    """`concurrent_trials` on every child run whose trial measured and that has none yet; the runs written."""
    counts = count_concurrent({t.trial_id: trial_results(t) for t in tune_trials})
    by_trial = {r.data.tags.get("trial_id"): r for r in runs}
    written = 0
    for trial_id, (n, epoch) in counts.items():
        run = by_trial.get(trial_id)
        if run is None or METRIC in run.data.metrics:
            continue
        tracker.log_result(run.info.run_id, {METRIC: n}, epoch)
        written += 1
    return written


@dataclass
class BenchOutcome:
    status: str  # finished | failed | disabled
    bench_id: str | None = None
    table: dict | None = None
    reason: str | None = None
    written: int = 0  # child runs written by this session

    @property
    def failed(self) -> bool:
        return self.status == "failed"


def plan(configs: dict, runs: list) -> tuple[list[Architecture], dict[str, list[str]]]:
    """The sweep's architectures (of every trial: {tune trial id: TrialConfig}) and the child runs of each."""
    archs = distinct_architectures(configs.values())
    run_of = {r.data.tags.get(T.TRIAL_ID): r.info.run_id for r in runs}
    runs_by_arch: dict[str, list[str]] = {a.arch_id: [] for a in archs}
    for trial_id, config in configs.items():
        if trial_id in run_of:
            runs_by_arch[arch_id_of(config)].append(run_of[trial_id])
    return archs, runs_by_arch


def record_architectures(spec, tracker, configs: dict) -> tuple[list[Architecture], dict[str, list[str]]]:
    """The sweep's architectures and the child runs of each, recorded on the parent run: what a bench
    measures, and what `tokensweep bench --sweep` benches later."""
    runs = child_runs(tracker)
    archs, runs_by_arch = plan(configs, runs)
    write_architectures(tracker, archs, runs_by_arch, runs, spec.plugins)
    return archs, runs_by_arch


def skip_stage(spec, tracker, configs: dict, pending) -> BenchOutcome:
    """[bench] enabled = false: nothing of the stage runs. The architectures are still recorded (for a later
    `tokensweep bench --sweep`), as one more of the sweep's writes in `pending` (a PendingWrites): a store
    that is unreachable now gets them later or reports them lost with the rest, and fails no bench."""

    def record() -> None:
        record_architectures(spec, tracker, configs)
        tracker.tag(tracker.parent_run_id, **{T.BENCH_STATUS: "disabled"})

    pending.submit("record the architectures", record)
    return BenchOutcome("disabled")


def run_stage(spec, tracker, configs: dict) -> BenchOutcome:
    """The sweep's own bench (or what is left of it after a killed driver); never raises for a failed bench."""
    parent = tracker.parent_run_id
    try:
        archs, runs_by_arch = record_architectures(spec, tracker, configs)
        table = stage_table(spec, tracker, archs)
        tracker.tag(parent, **{T.BENCH_STATUS: "recording"})
        written = record_on_children(tracker, table, runs_by_arch, child_runs(tracker))
        tracker.tag(parent, **{T.BENCH_STATUS: "finished"})
        if T.BENCH_FAILURE in tracker.tags_of(parent):
            tracker.client.delete_tag(parent, T.BENCH_FAILURE)  # an earlier session's failure, now resumed
        return BenchOutcome("finished", table["bench_id"], table, written=written)
    except Exception as err:
        reason = mlflow_error(err)
        log.warning("the bench stage failed: %s", reason)
        try:
            tracker.tag(parent, **{T.BENCH_STATUS: "failed", T.BENCH_FAILURE: reason})
        except Exception as tag_err:  # MLflow itself is down: the exit code and the summary still say it
            log.warning("could not record the bench failure on the parent run: %s", mlflow_error(tag_err))
        return BenchOutcome("failed", reason=reason)


def stage_table(spec, tracker, archs: list[Architecture]) -> dict:
    """The stage's measured table: the one an earlier session of this sweep measured, or a new one."""
    tags = tracker.tags_of(tracker.parent_run_id)
    bench_id = tags.get(T.BENCH_STAGE)
    if bench_id:
        table = load_table(tracker, bench_id)
        if table is not None and {a.arch_id for a in archs} <= {r["arch_id"] for r in table["rows"]}:
            return table
        if table is not None:  # measured before the sweep had these architectures: bench them all, anew
            bench_id = None
    if not bench_id:
        bench_id = new_bench_id(tracker)
        tracker.tag(tracker.parent_run_id, **{T.BENCH_STAGE: bench_id})
    tracker.tag(tracker.parent_run_id, **{T.BENCH_STATUS: "measuring"})
    table = {"bench_id": bench_id, "step": bench_step(bench_id), "source": "sweep",
             **measure_on_cluster(spec, archs)}  # fmt: skip
    save_table(tracker, table)
    return table


def bench_settings(spec, device: str) -> dict:
    return {"device": device, "batch": spec.bench_batch, "repeats": spec.bench_repeats, "steps": spec.bench_steps}


def pick_node(use_gpu: bool, exclude=frozenset()) -> tuple[str, float, float]:
    """(node id, its CPUs, its GPUs): the alive node with the most GPUs (GPU sweeps) or CPUs."""
    import ray

    nodes = [n for n in ray.nodes() if n.get("Alive") and n["NodeID"] not in exclude]
    key = "GPU" if use_gpu else "CPU"
    candidates = [n for n in nodes if n.get("Resources", {}).get(key, 0) > 0]
    if not candidates:
        raise RuntimeError(f"no alive Ray node has a {key} to bench on")
    best = max(candidates, key=lambda n: (n["Resources"].get(key, 0), n["Resources"].get("CPU", 0), n["NodeID"]))
    resources = best["Resources"]
    return best["NodeID"], resources.get("CPU", 0), resources.get("GPU", 0) if use_gpu else 0


def measure_on_cluster(spec, archs: list[Architecture]) -> dict:
    """measure in one Ray task holding a whole node (see the module's docstring)."""
    import ray
    from ray.exceptions import TaskUnschedulableError
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    gone: set[str] = set()
    while True:
        node, cpus, gpus = pick_node((spec.gpus or 0) > 0, exclude=gone)
        task = ray.remote(measure).options(
            num_cpus=cpus, num_gpus=gpus, max_retries=0,
            scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False),
        )  # fmt: skip
        settings = bench_settings(spec, "cuda" if gpus else "cpu")
        try:
            return ray.get(task.remote([a.to_json() for a in archs], settings, tuple(spec.plugins)))
        except TaskUnschedulableError:  # the node was lost after Ray last listed it alive: the next one
            gone.add(node)


# --- on demand: tokensweep bench --sweep NAME -----------------------------------------------------------


def latest_parent(tracker):
    """The sweep's latest parent run (and its experiment set on the tracker); a SpecError when there is none."""
    exp = tracker.client.get_experiment_by_name(tracker.sweep_name)
    if exp is None:
        raise SpecError(f"--sweep {tracker.sweep_name}: no such sweep in {redact(tracker.tracking_uri)} (no MLflow experiment of that name)")
    runs = tracker.client.search_runs([exp.experiment_id], filter_string=f"tags.`{T.ROLE}` = 'sweep'",
                                      order_by=["attributes.start_time DESC"], max_results=1)  # fmt: skip
    if not runs:
        raise SpecError(f"--sweep {tracker.sweep_name}: the experiment has no sweep (parent) run")
    tracker.experiment_id, tracker.parent_run_id = exp.experiment_id, runs[0].info.run_id
    return runs[0]


def bench_sweep(tracker, settings: dict, plugins: tuple[str, ...] = ()) -> dict:
    """A new bench of a sweep's architectures in this process, recorded beside the earlier ones."""
    parent = latest_parent(tracker)
    if parent.info.status == "RUNNING":
        raise SpecError(f"--sweep {tracker.sweep_name}: the sweep is running (parent run {parent.info.run_id}): bench it "
                        "once it has ended, or, if its driver was killed, finish it with tokensweep run SPEC --resume")  # fmt: skip
    record = read_architectures(tracker)
    if record is None:
        raise SpecError(f"--sweep {tracker.sweep_name}: no architectures recorded on its parent run "
                        "(its training trials never all ended); finish it with tokensweep run SPEC --resume")  # fmt: skip
    archs, runs_by_arch, recorded_plugins = record
    bench_id = new_bench_id(tracker)
    result = measure([a.to_json() for a in archs], settings, tuple(dict.fromkeys([*recorded_plugins, *plugins])))
    table = {"bench_id": bench_id, "step": bench_step(bench_id), "source": "tokensweep bench --sweep", **result}
    save_table(tracker, table)
    record_on_children(tracker, table, runs_by_arch, child_runs(tracker))
    return table
