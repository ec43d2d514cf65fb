"""An Optuna search's throughput objective, measured as the bench measures: each architecture alone.

A trial measures images/sec while the other trials of its node train beside it, and that figure
moves with them (2.4x apart for one architecture). So before a search trial's last report, its
architecture is benched with the bench's protocol (tokensweep.sweep.bench_measure) on the trial's
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
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tokensweep.sweep import bench_measure
from tokensweep.sweep.architectures import architecture_of
from tokensweep.sweep.space import SearchSettings

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
                (row,) = bench_measure.measure([arch.to_json()], bench, plugins)["rows"]
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
