"""System metrics (CPU, memory, disk, network, GPU via NVML) of a trial's node, written into its run
from inside the trial's process."""

from __future__ import annotations

import os

from tokensweep.tracking import tags as T
from tokensweep.tracking.store import open_store, quote
from tokensweep.tracking.uris import sqlite_path


def reachable_from_here(tracking_uri: str) -> bool:
    """Can this process write to the store? (A sqlite file on another node cannot be.)"""
    db = sqlite_path(tracking_uri)
    if db is not None:
        return os.path.exists(db)
    return not tracking_uri.startswith("file:")


def start_system_metrics(tracking_uri: str, trial_id: str, experiment_name: str, interval_s: float):
    """Sample this node's CPU/memory/disk/network (and GPU via NVML) into the trial's run.

    Runs in the trial's process (the node the trial runs on); writes go through `retry`.
    Returns the monitor (call .finish()) or None when the store is not reachable from this node
    or the trial's run cannot be found.
    """
    if not reachable_from_here(tracking_uri):
        return None
    from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

    client = open_store(tracking_uri)
    exp = client.get_experiment_by_name(experiment_name)
    if exp is None:
        return None
    runs = client.search_runs(
        [exp.experiment_id], filter_string=f"tags.`{T.TRIAL_ID}` = {quote(trial_id)}", max_results=1
    )
    if not runs:
        return None
    monitor = SystemMetricsMonitor(
        runs[0].info.run_id, sampling_interval=interval_s, resume_logging=True, tracking_uri=tracking_uri
    )
    monitor.mlflow_logger.client = client  # its log_batch calls now retry a locked database
    monitor.start()
    return monitor
