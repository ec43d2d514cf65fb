"""The Tune function trainable, `train_trial`: what runs in a trial's Ray worker.

Kept apart from the driver (tokensweep.sweep.driver) so a worker loads only what a trial needs:
Ray Tune and, on first use, trials (torch). MLflow loads only for the trial's system metrics, on
their own thread, so MLflow's import (~0.8 s) is not ahead of a new worker's first trial.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time

import ray
from ray import tune

from tokensweep.sweep import search_throughput
from tokensweep.sweep.space import TrialPayload
from tokensweep.sweep.worker_signals import QuietSigterm
from tokensweep.tracking.uris import redact

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
    driver counts the trials that ran beside it (tokensweep.sweep.concurrency).
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
    benched alone (tokensweep.sweep.search_throughput).
    """
    payload = TrialPayload.decode(config)
    context = tune.get_context()
    done = finished.lookup(context.get_trial_id(), payload.index) if finished is not None else None
    if done is not None:
        tune.report(dict(done))
        return

    import trials
    from trials.data.describe import describe_data

    from tokensweep.sweep.checkpoints import resume_directory

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
    objective = search_throughput.TrialThroughput(platform.search_throughput, trial_config, platform.plugins)

    def report(metrics: dict, checkpoint_dir: str) -> None:
        extra = first.copy()
        first.clear()
        metrics = objective.add_to(metrics)
        tune.report(
            {**metrics, **extra, "ray_node_id": node_id, "ray_hostname": host, **gpus, **window.keys(metrics)},
            checkpoint=tune.Checkpoint.from_directory(checkpoint_dir),
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


# the trial's Tune actor ends quietly on SIGTERM (tokensweep.sweep.worker_signals)
train_trial.__mixins__ = (QuietSigterm,)
