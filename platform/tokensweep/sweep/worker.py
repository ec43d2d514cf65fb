"""What runs in a trial's worker: train_trial, the checkpoint it continues from, a quiet SIGTERM.

SIGTERM in a trial's Ray worker: the process ends at once, without a traceback or a stack dump.

Ray's worker handles SIGTERM (what its raylet, a node being drained, or Tune shutting its reused actors
down send) by raising SystemExit in the worker's main thread, wherever that thread happens to run Python
next: inside a garbage-collection callback it becomes `Exception ignored in: <function WeakSet...>
SystemExit: 1` in the sweep's output (and the worker lives on until it is killed); while a trial trains,
the unwinding races the training thread and ends in a C++ stack dump. A process told to terminate has
nothing left to save here (checkpoints are written atomically, results reported; the driver records how
the trial ended), so it ends the way SIGTERM's default does, quietly.

The handler is installed by a mixin of the trial's Tune actor (`train_trial.__mixins__`, a Tune function
trainable's hook for classes to mix into the actor it builds): its `setup` runs in the worker's main
thread, the one thread that may set signal handlers.

Which checkpoint a retried or resumed trial continues from: Tune's registered one (the driver's Tune callback
makes it that of the last result the driver took in: each checkpoint's metadata says its epoch), or - when
that one does not load (corrupted, cut off by a full disk, or deleted after the saved state named it) - the
newest in the trial's folder that does. The trial numbers its next checkpoint after the one it continues from.

Tune registers one checkpoint per trial as the one to restore; if it is damaged, every retry and every
`--resume` of the trial fails the same way, although its folder may hold an intact one (an older one it
keeps, or a newer one its saved state had not caught up with). Runs in the trial's worker.

The Tune function trainable, `train_trial`: what runs in a trial's Ray worker.

Kept apart from the driver (tokensweep.sweep.driver) so a worker loads only what a trial needs:
Ray Tune and, on first use, trials (torch). MLflow loads only for the trial's system metrics, on
their own thread, so MLflow's import (~0.8 s) is not ahead of a new worker's first trial.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator

import ray
from ray import tune

from tokensweep.payload import TrialPayload
from tokensweep.sweep import bench
from tokensweep.tracking.store import redact


def end_quietly(signum, frame) -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # a closed or broken stream: nothing more to say
            pass
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def quiet_sigterm() -> bool:
    """Install `end_quietly` for SIGTERM (main thread only); True if it was installed."""
    if threading.current_thread() is not threading.main_thread():
        return False
    signal.signal(signal.SIGTERM, end_quietly)
    return True


class QuietSigterm:
    """Mixed into the trial's Tune actor: sets the quiet SIGTERM handler as the actor is set up."""

    def setup(self, config, *args, **kwargs):
        quiet_sigterm()
        super().setup(config, *args, **kwargs)


CHECKPOINT_DIR = re.compile(r"^checkpoint_(\d+)$")
EPOCH = "epoch"  # the key of a report's epoch, and of the epoch a checkpoint holds (its Tune metadata)


def unloadable(directory: str) -> str | None:
    """Why the trial checkpoint in `directory` does not load (one line), or None if it does."""
    from trials.errors import ConfigError
    from trials.train.checkpoint import load_checkpoint

    try:
        load_checkpoint(directory)
    except ConfigError as err:
        return str(err)
    return None


def checkpoint_name(checkpoint: tune.Checkpoint) -> str:
    return checkpoint.path.rstrip("/").rpartition("/")[2]


def checkpoint_index(checkpoint: tune.Checkpoint) -> int:
    """NNNNNN of a checkpoint_NNNNNN folder (-1 for a folder of another name)."""
    m = CHECKPOINT_DIR.match(checkpoint_name(checkpoint))
    return int(m[1]) if m else -1


def number_after(checkpoint: tune.Checkpoint) -> None:
    """The trial's next checkpoint folder is numbered after the one it resumes from. Tune's saved index is that
    of its registered checkpoint, and resuming from a newer one beside it, the next save would take the name of
    a folder that holds a later epoch and that Tune may then delete as an old one."""
    from ray.train._internal.session import get_session

    session = get_session()
    if session is not None and checkpoint_index(checkpoint) >= 0:
        session.storage.current_checkpoint_index = checkpoint_index(checkpoint)


def siblings_newest_first(checkpoint: tune.Checkpoint) -> list[tune.Checkpoint]:
    """The other checkpoint_NNNNNN folders beside `checkpoint` (on its filesystem), newest first."""
    import pyarrow.fs

    fs = checkpoint.filesystem
    parent, _, own = checkpoint.path.rstrip("/").rpartition("/")
    try:
        infos = fs.get_file_info(pyarrow.fs.FileSelector(parent))
    except OSError:
        return []
    found = []
    for info in infos:
        m = CHECKPOINT_DIR.match(info.base_name)
        if m and info.type == pyarrow.fs.FileType.Directory and info.base_name != own:
            found.append((int(m[1]), info.path))
    return [tune.Checkpoint(path, filesystem=fs) for _, path in sorted(found, reverse=True)]


def why_not_loaded(checkpoint: tune.Checkpoint) -> str | None:
    """Why `checkpoint` does not load (one line), or None if it does: also when its folder is gone (Tune's
    saved state lags its storage: a resumed sweep may name one that Tune deleted after newer ones registered)."""
    try:
        with checkpoint.as_directory() as directory:
            return unloadable(directory)
    except FileNotFoundError:
        return f"its checkpoint {checkpoint_name(checkpoint)} is gone from the storage"


def choose(checkpoint: tune.Checkpoint, trial_name: str) -> tuple[tune.Checkpoint, str | None]:
    """`checkpoint` if it loads, else the newest loadable one beside it and a note saying so; else the
    registered one's error (a ConfigError: the trial fails with that one line)."""
    why = why_not_loaded(checkpoint)
    if why is None:
        return checkpoint, None
    for other in siblings_newest_first(checkpoint):
        if why_not_loaded(other) is None:
            note = (f"trial {trial_name}: {why}; resuming from {checkpoint_name(other)} instead, "
                    "the newest checkpoint of the trial that loads")  # fmt: skip
            print(f"tokensweep: {note}", file=sys.stderr, flush=True)  # the worker's log
            return other, note
    from trials.errors import ConfigError

    raise ConfigError(f"{why} (and no other checkpoint of the trial loads)")


@contextlib.contextmanager
def resume_directory(checkpoint: tune.Checkpoint, trial_name: str) -> Iterator[tuple[str, str | None]]:
    """A local directory holding the checkpoint the trial continues from, and the note saying why it is
    not Tune's registered one (None when it is): the trial's first report carries it to the driver."""
    chosen, note = choose(checkpoint, trial_name)
    number_after(chosen)
    with chosen.as_directory() as directory:
        yield directory, note


log = logging.getLogger(__name__)

MONITOR_START_WAIT_S = 30.0  # at a trial's end, how long its system-metrics monitor may still take to start


def _start_system_metrics(*args):
    from tokensweep.tracking.system_metrics import start_system_metrics  # MLflow: on the monitor's thread

    return start_system_metrics(*args)


class _BackgroundMonitor:
    """Starts the trial's system-metrics monitor on a thread: finding the trial's run asks the tracking
    server, and a server that is down right then (MLflow retries for minutes) must not hold up training.
    Metrics about the machine never fail the trial."""

    def __init__(self, start, *args):
        self._lock = threading.Lock()
        self._monitor = None
        self._finished = False
        self._thread = threading.Thread(target=self._start, args=(start, *args), name="system-metrics-start", daemon=True)
        self._thread.start()

    def _start(self, start, *args) -> None:
        try:
            monitor = start(*args)
        except Exception as err:
            log.warning("system metrics are off for this trial: %s", redact(str(err)))
            return
        with self._lock:
            if not self._finished:
                self._monitor = monitor
                return
        if monitor is not None:  # the trial ended first
            monitor.finish()

    def finish(self) -> None:
        # a monitor still starting (MLflow's import, on a busy node) gets to take its sample first
        self._thread.join(MONITOR_START_WAIT_S)
        with self._lock:
            self._finished = True
            monitor = self._monitor
        if monitor is not None:
            monitor.finish()


class MeasureWindow:
    """When this attempt ran and when its trial measured, as extra keys of its reports.

    `_started_at` and `_reported_at` (wall clock, every report) say when the attempt ran on its node;
    the last report also has `_measured_from` / `_measured_to`: the measurement after the last epoch
    runs from the end of that epoch's evaluation (the previous report's return plus `epoch_time_s`)
    to this report. When the last epoch is the attempt's first (one epoch, or resumed before the last),
    the window starts when the attempt did: it then also spans building the data and the model. The
    driver counts the trials that ran beside it (tokensweep.sweep.bench).
    A leading "_" keeps them out of MLflow (tokensweep.tracking.tracker.split_result).
    """

    def __init__(self):
        self.started = self.last_return = time.time()

    def reported(self) -> None:
        self.last_return = time.time()

    def keys(self, metrics: dict) -> dict:
        now = time.time()
        out = {"_started_at": self.started, "_reported_at": now}
        if "images_per_sec" in metrics:
            out["_measured_from"] = min(now, self.last_return + float(metrics.get("epoch_time_s", 0.0)))
            out["_measured_to"] = now
        return out


def train_trial(config: dict, finished=None) -> None:
    """The Tune function trainable: one `trials.run_trial`, reporting every epoch with its checkpoint.

    `finished` (a resumed sweep's FinishedTrials, given with tune.with_parameters): a trial whose MLflow
    run is already FINISHED reports that run's final metrics back to Tune and ends, training nothing.
    An Optuna search's trial steps under its node's lock and its last report carries its architecture
    benched alone (tokensweep.sweep.bench).
    """
    payload = TrialPayload.decode(config)
    context = tune.get_context()
    done = finished.lookup(context.get_trial_id(), payload.index) if finished is not None else None
    if done is not None:
        tune.report(dict(done))
        return

    import trials
    from trials.data.describe import describe_data

    for name in ("mlflow.system_metrics", "ray.tune", "ray.train"):  # per-epoch INFO chatter
        logging.getLogger(name).setLevel(logging.WARNING)
    platform = payload.platform
    for module in platform.plugins:  # the user's embeddings, before their knobs are read
        trials.load_plugin(module)
    trial_config = trials.TrialConfig.from_dict(payload.values)  # validated on the driver; built once here
    node_id = ray.get_runtime_context().get_node_id()
    host = socket.gethostname()
    # the GPUs Ray gave this trial, as the worker sees them (Ray sets CUDA_VISIBLE_DEVICES from its GPU ids)
    gpus = {"cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES", "")} if ray.get_gpu_ids() else {}

    monitor = None
    if platform.system_metrics:
        monitor = _BackgroundMonitor(
            _start_system_metrics,
            platform.tracking_uri,
            context.get_trial_id(),
            platform.experiment,
            platform.system_metrics_interval_s,
        )

    window = MeasureWindow()
    # the data this worker reads, in the first report: the driver logs it as the run's MLflow dataset
    first = {"_dataset": describe_data(trial_config).as_dict()}
    objective = bench.TrialThroughput(platform.search_throughput, trial_config, platform.plugins)

    def report(metrics: dict, checkpoint_dir: str) -> None:
        extra = first.copy()
        first.clear()
        metrics = objective.add_to(metrics)
        checkpoint = tune.Checkpoint.from_directory(checkpoint_dir)
        checkpoint.set_metadata({EPOCH: metrics[EPOCH]})  # the driver matches it to the epoch's result (sweep.tuner)
        tune.report(
            {**metrics, **extra, "ray_node_id": node_id, "ray_hostname": host, **gpus, **window.keys(metrics)},
            checkpoint=checkpoint,
        )
        window.reported()

    try:
        checkpoint = tune.get_checkpoint()
        if checkpoint is None:
            final = trials.run_trial(trial_config, report, progress=False, step_guard=objective.step)
        else:
            with resume_directory(checkpoint, payload.name) as (directory, note):  # Tune's, or the newest that loads
                if note is not None:
                    first["_note"] = note  # Ray's worker lines may not reach the terminal: the driver says it
                final = trials.run_trial(trial_config, report, resume_from=directory, progress=False, step_guard=objective.step)
        final = objective.add_to(final)
        missing = [m for m in objective.reported_keys(platform.objectives) if m not in final]
        if missing:  # the searcher would get nothing to learn from: fail loudly, not silently
            raise RuntimeError(f"the trial's last report has no {', '.join(missing)} (the search objectives)")
    finally:
        objective.close()
        if monitor is not None:
            monitor.finish()


# the trial's Tune actor ends quietly on SIGTERM (tokensweep.sweep.worker)
train_trial.__mixins__ = (QuietSigterm,)
