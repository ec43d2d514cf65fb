"""System metrics (CPU, memory, disk, network, GPU via NVML) of a trial's node, written into its run
from inside the trial's process."""

from __future__ import annotations

import os
import time

from tokensweep.tracking import tags as T
from tokensweep.tracking.store import open_store, quote
from tokensweep.tracking.store import sqlite_path

RUN_WAIT_S = 60.0  # how long the monitor waits for the driver to create the trial's run


def reachable_from_here(tracking_uri: str) -> bool:
    """Can this process write to the store? (A sqlite file on another node cannot be.)"""
    db = sqlite_path(tracking_uri)
    if db is not None:
        return os.path.exists(db)
    return not tracking_uri.startswith("file:")


def wait_for_run(client, experiment_id: str, trial_id: str, timeout_s: float = RUN_WAIT_S) -> str | None:
    """The trial's run id, once the driver has created it: its callback writes from a queue, which a busy
    driver (many trials starting at once) may reach seconds after the trial has started."""
    deadline = time.monotonic() + timeout_s
    while True:
        runs = client.search_runs([experiment_id], filter_string=f"tags.`{T.TRIAL_ID}` = {quote(trial_id)}", max_results=1)
        if runs:
            return runs[0].info.run_id
        if time.monotonic() > deadline:
            return None
        time.sleep(0.5)


def start_system_metrics(tracking_uri: str, trial_id: str, experiment_name: str, interval_s: float):
    """Sample this node's CPU/memory/disk/network (and GPU via NVML) into the trial's run.

    Runs in the trial's process (the node the trial runs on); writes go through `retry`.
    Returns the monitor (call .finish()) or None when the store is not reachable from this node
    or the trial's run is not there within RUN_WAIT_S.
    """
    if not reachable_from_here(tracking_uri):
        return None
    client = open_store(tracking_uri)
    exp = client.get_experiment_by_name(experiment_name)
    if exp is None:
        return None
    run_id = wait_for_run(client, exp.experiment_id, trial_id)
    if run_id is None:
        return None
    monitor = trial_monitor_class()(run_id, sampling_interval=interval_s, resume_logging=True, tracking_uri=tracking_uri)
    monitor.mlflow_logger.client = client  # its log_batch calls now retry a locked database
    monitor.start()
    return monitor


def trial_monitor_class():
    """MLflow's SystemMetricsMonitor, publishing the sample it holds when it stops.

    MLflow's loop takes a sample, waits one interval, and publishes it only if it was not stopped
    meanwhile: a trial shorter than one interval - or whose monitor started late, behind MLflow's
    import on a busy node - would have no system metrics at all. Stopped, it publishes the sample it
    holds, or takes one if it has published none. (MLflow imported here, on the
    monitor's thread.)"""
    from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

    class TrialSystemMetrics(SystemMetricsMonitor):
        published = False

        def publish_metrics(self, metrics):
            super().publish_metrics(metrics)
            self.published = True

        def finish(self):
            if self._process is not None:
                self._shutdown_event.set()
                self._process.join()
                if not self.published:  # stopped before its first interval ended: one sample, now
                    self.collect_metrics()
                last = self.aggregate_metrics()  # empty when the loop published its last sample itself
                if last:
                    self.publish_metrics(last)
            super().finish()  # flushes what was published

    return TrialSystemMetrics
