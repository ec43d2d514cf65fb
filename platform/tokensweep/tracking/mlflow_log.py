"""MLflow for sweeps: one experiment per sweep name, one parent run per sweep, one child run per trial.

All of it is written from the sweep's driver process (see `SweepTracker` and the Tune callback in
`tokensweep.tune_runner`), for three reasons:
- one writer: a sqlite store sees its writes one at a time instead of 2-8 trial processes racing
  for its lock ("database is locked"); what still contends (system-metric samples written by the
  trials themselves, another sweep) goes through `retry`;
- the driver sees every way a trial ends, including a worker process that dies, so no child run
  is left RUNNING;
- a sqlite file on the head node works even when trials run on other nodes.
Child runs are found by their `trial_id` tag (Tune's trial id, stable across `Tuner.restore`)
before one is created, so a resumed sweep never makes a second run for a trial.

This module imports MLflow at import time: import it only once a spec has been validated.
"""

from __future__ import annotations

import collections
import logging
import math
import os
import random
import re
import subprocess
import sys
import time
from pathlib import Path

from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from tokensweep.tracking.uris import default_optuna_storage, redact, resolve_tracking_uri, sqlite_path

log = logging.getLogger(__name__)

ROLE_TAG = "tokensweep.role"
SEARCH_TAG = "tokensweep.search"
TUNE_PATH_TAG = "tokensweep.tune_path"
TRIAL_ID_TAG = "trial_id"
PARENT_TAG = "mlflow.parentRunId"

# Tune's own bookkeeping in every result: never logged as metrics.
TUNE_KEYS = frozenset(
    {
        "training_iteration",
        "time_total_s",
        "time_this_iter_s",
        "time_since_restore",
        "timesteps_total",
        "timesteps_this_iter",
        "timesteps_since_restore",
        "episodes_total",
        "episodes_this_iter",
        "iterations_since_restore",
        "timestamp",
        "date",
        "done",
        "trial_id",
        "experiment_tag",
        "node_ip",
        "hostname",
        "pid",
        "config",
        "checkpoint_dir_name",
        "should_checkpoint",
        "__duplicate__",
        "__trial_info__",
        "epoch",  # the step, not a metric
    }
)
# A metric every epoch's report carries: its history tells which epochs a run already has.
STEP_METRIC = "epoch_time_s"
# Values of a trial's report logged as tags rather than metrics.
TAG_KEYS = ("device", "precision", "torch_version", "threads", "gpu_shared", "bench_batch", "ray_node_id", "ray_hostname")


# --- where things are -----------------------------------------------------------------------------


def git_commit(cwd: str | None = None) -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd or Path(__file__).parent, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = out.stdout.strip()
    if out.returncode != 0 or not commit:
        return None
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        cwd=cwd or Path(__file__).parent,
        capture_output=True,
        text=True,
        timeout=5,
    )
    return commit + ("-dirty" if dirty.returncode == 0 and dirty.stdout.strip() else "")


# --- retries ----------------------------------------------------------------------------------------

_TRANSIENT = ("database is locked", "database table is locked", "deadlock detected", "could not serialize access")


def is_transient(err: BaseException) -> bool:
    text = f"{type(err).__name__}: {err}".lower()
    return any(marker in text for marker in _TRANSIENT)


def retry(fn, *args, attempts: int = 12, base_delay: float = 0.05, **kwargs):
    """Call fn, retrying lock/serialisation errors of a shared database with jittered backoff (~40 s)."""
    for attempt in range(attempts):
        try:
            return fn(*args, **kwargs)
        except Exception as err:  # MlflowException wraps sqlalchemy's OperationalError
            if attempt == attempts - 1 or not is_transient(err):
                raise
            delay = min(5.0, base_delay * 2**attempt) * (0.5 + random.random())
            log.debug("transient MLflow store error (%s); retrying in %.2fs", err, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")


# A tracking server that does not answer (stopped, restarting, behind a proxy that says 502-504).
_UNAVAILABLE = (
    "connection refused",
    "failed to establish a new connection",
    "max retries exceeded",
    "connection aborted",
    "connection reset",
    "remotedisconnected",
    "timed out",
    "temporarily unavailable",
    "name or service not known",
    "too many 502 error responses",
    "too many 503 error responses",
    "too many 504 error responses",
)


def is_unavailable(err: BaseException) -> bool:
    """Did a write fail because the store could not be reached right now (worth keeping and retrying)?"""
    text = f"{type(err).__name__}: {err}".lower()
    return is_transient(err) or any(marker in text for marker in _UNAVAILABLE)


# The driver's MLflow HTTP client: fail a request in seconds when the server is down (MLflow's default
# is 7 retries with exponential backoff, ~4 minutes, and a 120 s timeout per try, during which Tune's
# event loop - which runs the tracking callback - would stand still). PendingWrites keeps what failed
# and replays it later instead. A server that accepts connections but never answers costs up to
# 2 x 15 s per replay attempt.
DRIVER_HTTP_SETTINGS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.5",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "15",
}


def use_driver_http_settings(environ=None) -> None:
    """Set DRIVER_HTTP_SETTINGS in this process (values the user set win). Call after ray.init, so that
    the trials of a local Ray keep MLflow's patient defaults for their system metrics."""
    environ = os.environ if environ is None else environ
    for key, value in DRIVER_HTTP_SETTINGS.items():
        environ.setdefault(key, value)


class PendingWrites:
    """Tracking writes, in order, that wait while the store is unreachable; replayed when it answers.

    `submit(what, fn, *args)` calls fn at once when nothing is waiting. If the store cannot be reached
    (`is_unavailable`), the write waits in a FIFO, and so does every later one - never reordered, so a
    run is not marked FINISHED before its last metrics arrive. Later submits (and `poke`, called on
    every Tune step) replay the queue, at most once per `retry_every_s`, so a dead server costs one
    quick failed request every few seconds rather than blocking. `drain` waits for the queue to empty
    at the end of a sweep; what it cannot deliver is counted in `lost` and reported, never dropped
    silently. Any other error (a bug, a refused value) is counted in `failed`, logged, and skipped.
    """

    def __init__(self, label: str = "MLflow", retry_every_s: float = 3.0, clock=time.monotonic, sleep=time.sleep):
        self.label = label
        self.retry_every_s = retry_every_s
        self.clock, self.sleep = clock, sleep
        self.queue: collections.deque = collections.deque()
        self.failed = 0  # writes that raised something other than "unreachable"
        self.lost = 0  # writes still waiting when drain gave up
        self.delivered_late = 0  # writes that waited, then arrived
        self.outages = 0
        self._next_try = 0.0

    @property
    def waiting(self) -> int:
        return len(self.queue)

    def submit(self, what: str, fn, *args) -> None:
        self.queue.append((what, fn, args))
        if len(self.queue) == 1:
            self._run_queue()
        else:
            self.poke()

    def poke(self) -> None:
        """Replay waiting writes if the last try was long enough ago."""
        if self.queue and self.clock() >= self._next_try:
            self._run_queue()

    def _run_queue(self) -> bool:
        """Deliver waiting writes in order; stop at the first that finds the store unreachable."""
        was_waiting = self._next_try > 0  # an outage began: what is delivered now arrives late
        while self.queue:
            what, fn, args = self.queue[0]
            try:
                fn(*args)
            except Exception as err:
                if is_unavailable(err):
                    if self._next_try == 0:
                        self.outages += 1
                        print(
                            f"tokensweep run: note: {self.label} is unreachable ({_why_unreachable(err)}); keeping its "
                            f"writes in order and retrying every {self.retry_every_s:g}s",
                            file=sys.stderr,
                            flush=True,
                        )
                    self._next_try = self.clock() + self.retry_every_s
                    return False
                self.failed += 1
                log.error("MLflow logging failed (%s); the sweep goes on: %s", what, _one_line(err))
                log.debug("MLflow logging failure", exc_info=True)
            else:
                if was_waiting:
                    self.delivered_late += 1
            self.queue.popleft()
        if self._next_try > 0:
            print(f"tokensweep run: note: {self.label} answers again; every waiting write delivered", file=sys.stderr, flush=True)
            self._next_try = 0.0
        return True

    def drain(self, timeout_s: float) -> int:
        """Replay until the queue is empty or `timeout_s` passed; return (and count in `lost`) what is left."""
        if not self.queue:
            return 0
        deadline = self.clock() + timeout_s
        print(
            f"tokensweep run: note: waiting up to {timeout_s:g}s for {self.label} to deliver "
            f"{len(self.queue)} write(s)",
            file=sys.stderr,
            flush=True,
        )
        while self.queue:
            self.poke()
            if not self.queue or self.clock() >= deadline:
                break
            self.sleep(min(self.retry_every_s, max(0.0, deadline - self.clock()), 1.0))
        left = len(self.queue)
        if left:
            self.lost += left
            whats = collections.Counter(what for what, _, _ in self.queue)
            summary = ", ".join(f"{n} x {what}" for what, n in whats.items())
            print(
                f"tokensweep run: error: {self.label} stayed unreachable; {left} write(s) were not recorded "
                f"({summary}): those runs are incomplete",
                file=sys.stderr,
                flush=True,
            )
            self.queue.clear()
        return left


def _one_line(err: BaseException) -> str:
    text = f"{type(err).__name__}: {err}"
    return redact(" ".join(text.split()))[:500]


def _why_unreachable(err: BaseException) -> str:
    """'Connection refused' rather than MLflow's three lines of urllib3 retry history."""
    text = str(err)
    m = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", text) or re.search(
        r"(?i)(read timed out|connect timeout|too many \d+ error responses|connection aborted|remotedisconnected|database is locked)", text
    )
    return m[1].strip() if m else _one_line(err)[:200]


class RetryingClient:
    """An MlflowClient whose calls retry transient database errors."""

    def __init__(self, tracking_uri: str):
        self.tracking_uri = tracking_uri
        self._client = MlflowClient(tracking_uri)

    def __getattr__(self, name):
        attr = getattr(self._client, name)
        if not callable(attr):
            return attr

        def call(*args, **kwargs):
            return retry(attr, *args, **kwargs)

        return call


# --- the sweep's runs ---------------------------------------------------------------------------------


def _now_ms() -> int:
    return int(time.time() * 1000)


def _q(value: str) -> str:
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def _tag_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def split_result(result: dict) -> tuple[dict[str, float], dict[str, str]]:
    """A trial's report -> (metrics, tags): numbers become metrics, TAG_KEYS and strings tags; Tune's keys dropped."""
    metrics, tags = {}, {}
    for key, value in result.items():
        if key in TUNE_KEYS or key.startswith("_") or "/" in key:
            continue
        if key in TAG_KEYS or isinstance(value, (str, bool)):
            if value is not None:
                tags[key] = _tag_value(value)
        elif isinstance(value, (int, float)) and math.isfinite(value):
            metrics[key] = float(value)
    return metrics, tags


class SweepTracker:
    """Driver-side writer of one sweep's MLflow runs."""

    def __init__(self, tracking_uri: str, sweep_name: str):
        self.tracking_uri = tracking_uri
        self.sweep_name = sweep_name
        self.client = RetryingClient(tracking_uri)
        self.experiment_id: str | None = None
        self.parent_run_id: str | None = None
        self.resumed_parent = False  # start_parent(resume=True) found the sweep's parent run
        self._children: dict[str, str] = {}  # tune trial id -> run id
        self._last_step: dict[str, int] = {}  # run id -> the last epoch (step) logged to it

    # experiment and parent
    def ensure_experiment(self) -> str:
        exp = self.client.get_experiment_by_name(self.sweep_name)
        if exp is None:
            kwargs = {}
            db = sqlite_path(self.tracking_uri)
            if db:  # artifacts beside the database, not wherever the first run happened to start
                kwargs["artifact_location"] = Path(Path(db).parent, "mlartifacts", self.sweep_name).as_uri()
            try:
                self.experiment_id = self.client.create_experiment(
                    self.sweep_name, tags={"tokensweep.sweep": self.sweep_name}, **kwargs
                )
            except MlflowException:  # created meanwhile by a concurrent process
                self.experiment_id = self.client.get_experiment_by_name(self.sweep_name).experiment_id
        else:
            if exp.lifecycle_stage != "active":
                self.client.restore_experiment(exp.experiment_id)
            self.experiment_id = exp.experiment_id
        return self.experiment_id

    def find_parent(self, tune_path: str) -> str | None:
        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`{ROLE_TAG}` = 'sweep' and tags.`{TUNE_PATH_TAG}` = {_q(tune_path)}",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        return runs[0].info.run_id if runs else None

    def start_parent(
        self,
        *,
        search: str,
        tune_path: str,
        command: str,
        spec_text: str,
        spec_name: str,
        resolved: dict,
        description: str = "",
        resume: bool = False,
        extra_tags: dict | None = None,
    ) -> str:
        self.ensure_experiment()
        run_id = self.find_parent(tune_path) if resume else None
        if run_id is not None:
            self.parent_run_id = run_id
            self.resumed_parent = True
            self.client.update_run(run_id, status="RUNNING")
            resumes = int(self.client.get_run(run_id).data.tags.get("tokensweep.resumes", "0")) + 1
            self.client.log_batch(
                run_id,
                tags=[RunTag("tokensweep.resumes", str(resumes)), RunTag("tokensweep.resume_command", command[:5000])],
            )
            return run_id
        self._close_stale_parents(tune_path)
        tags = {
            ROLE_TAG: "sweep",
            SEARCH_TAG: search,
            TUNE_PATH_TAG: tune_path,
            "tokensweep.command": command[:5000],
            "tokensweep.sweep": self.sweep_name,
        }
        commit = git_commit()
        if commit:
            tags["mlflow.source.git.commit"] = commit.removesuffix("-dirty")
            tags["tokensweep.git_commit"] = commit  # "-dirty": uncommitted changes to tracked files
        if description:
            tags["mlflow.note.content"] = description
        tags.update(extra_tags or {})
        run = self.client.create_run(self.experiment_id, tags=tags, run_name=self.sweep_name)
        self.parent_run_id = run.info.run_id
        self.client.log_text(self.parent_run_id, spec_text, f"spec/{Path(spec_name).name or 'spec.toml'}")
        self.client.log_dict(self.parent_run_id, resolved, "spec/resolved.json")
        return self.parent_run_id

    def _close_stale_parents(self, tune_path: str) -> None:
        """A sweep started over (--fresh, or a driver killed before Tune saved any state) leaves its
        old parent and children RUNNING: mark them KILLED."""
        stale = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`{ROLE_TAG}` = 'sweep' and tags.`{TUNE_PATH_TAG}` = {_q(tune_path)} "
            "and attributes.status = 'RUNNING'",
            max_results=1000,
        )
        for run in stale:
            self.parent_run_id = run.info.run_id
            self.close_running_children("KILLED")
            self.client.set_terminated(run.info.run_id, status="KILLED")
        self.parent_run_id = None

    def end_parent(self, status: str, tags: dict | None = None) -> None:
        if self.parent_run_id is None:
            return
        if tags:
            self.client.log_batch(self.parent_run_id, tags=[RunTag(k, _tag_value(v)) for k, v in tags.items()])
        self.client.set_terminated(self.parent_run_id, status=status)

    # children
    def find_child(self, trial_id: str) -> str | None:
        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`{TRIAL_ID_TAG}` = {_q(trial_id)} and tags.`{PARENT_TAG}` = {_q(self.parent_run_id)}",
            max_results=2,
        )
        return runs[0].info.run_id if runs else None

    def start_child(self, trial_id: str, name: str, params: dict, tags: dict) -> str:
        """The trial's run: the existing one (set RUNNING again) or a new one with params logged."""
        run_id = self._children.get(trial_id) or self.find_child(trial_id)
        if run_id is not None:
            self._children[trial_id] = run_id
            run = self.client.get_run(run_id)
            if run.info.status != "RUNNING":  # a resumed (or retried-on-resume) trial
                reason = run.data.tags.get("failure_reason")
                if reason:
                    self.client.delete_tag(run_id, "failure_reason")
                    self.client.log_batch(run_id, tags=[RunTag("tokensweep.previous_failure", reason)])
                self.client.update_run(run_id, status="RUNNING")
            return run_id
        all_tags = {PARENT_TAG: self.parent_run_id, ROLE_TAG: "trial", TRIAL_ID_TAG: trial_id, **tags}
        run = self.client.create_run(
            self.experiment_id, tags={k: _tag_value(v) for k, v in all_tags.items()}, run_name=name
        )
        run_id = run.info.run_id
        self._children[trial_id] = run_id
        self._last_step[run_id] = 0
        if params:
            self.client.log_batch(run_id, params=[Param(k, _tag_value(v)) for k, v in params.items()])
        return run_id

    def child_id(self, trial_id: str) -> str | None:
        return self._children.get(trial_id) or self.find_child(trial_id)

    def last_logged_step(self, run_id: str) -> int:
        """The last epoch logged to a trial's run (0: none); read from MLflow once for a reused run."""
        if run_id not in self._last_step:
            history = self.client.get_metric_history(run_id, STEP_METRIC)
            self._last_step[run_id] = max((m.step for m in history), default=0)
        return self._last_step[run_id]

    def log_result(self, run_id: str, result: dict, step: int) -> None:
        metrics, tags = split_result(result)
        ts = _now_ms()
        self.client.log_batch(
            run_id,
            metrics=[Metric(k, v, ts, step) for k, v in metrics.items()],
            tags=[RunTag(k, v) for k, v in tags.items()],
        )
        if STEP_METRIC in metrics:
            self._last_step[run_id] = max(step, self._last_step.get(run_id, 0))

    def end_child(self, run_id: str, status: str, reason: str | None = None) -> None:
        tags = [RunTag("failure_reason", reason[:5000])] if reason else []
        if tags:
            self.client.log_batch(run_id, tags=tags)
        self.client.set_terminated(run_id, status=status)

    def close_running_children(self, status: str = "KILLED") -> int:
        """Mark every child of the parent still RUNNING (its trial did not end) as `status`."""
        if self.parent_run_id is None:
            return 0
        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`{PARENT_TAG}` = {_q(self.parent_run_id)} and attributes.status = 'RUNNING'",
            max_results=10_000,
        )
        for run in runs:
            self.client.set_terminated(run.info.run_id, status=status)
        return len(runs)


# --- system metrics, from inside a trial -------------------------------------------------------------


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

    client = RetryingClient(tracking_uri)
    exp = client.get_experiment_by_name(experiment_name)
    if exp is None:
        return None
    runs = client.search_runs(
        [exp.experiment_id], filter_string=f"tags.`{TRIAL_ID_TAG}` = {_q(trial_id)}", max_results=1
    )
    if not runs:
        return None
    monitor = SystemMetricsMonitor(
        runs[0].info.run_id, sampling_interval=interval_s, resume_logging=True, tracking_uri=tracking_uri
    )
    monitor.mlflow_logger.client = client  # its log_batch calls now retry a locked database
    monitor.start()
    return monitor


__all__ = [
    "PendingWrites",
    "RetryingClient",
    "SweepTracker",
    "default_optuna_storage",
    "resolve_tracking_uri",
    "retry",
    "split_result",
    "start_system_metrics",
]
