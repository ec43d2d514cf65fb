"""MlflowTrialLogger: a Tune callback on the driver that turns every trial event into SweepTracker writes.

Every write goes through `PendingWrites`: while the tracking server is unreachable, writes wait in
order and are replayed when it answers again (and at the end of the sweep, `PendingWrites.drain`), so an outage
delays records but loses none; what cannot be delivered in the end is counted, not dropped silently.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from collections.abc import Callable

from ray import tune

from tokensweep.payload import TrialPayload, variant_index
from tokensweep.tracking import tags as T
from tokensweep.tracking.store import PendingWrites, redact, sqlite_path, store_problem
from tokensweep.tracking.tracker import COST_METRIC, SweepTracker, now_ms

log = logging.getLogger(__name__)

# Tune's own bookkeeping in every result: never logged.
TUNE_KEYS = frozenset(
    {
        "training_iteration", "time_total_s", "time_this_iter_s", "time_since_restore", "timesteps_total",
        "timesteps_this_iter", "timesteps_since_restore", "episodes_total", "episodes_this_iter",
        "iterations_since_restore", "timestamp", "date", "done", "trial_id", "experiment_tag", "node_ip",
        "hostname", "pid", "config", "checkpoint_dir_name", "should_checkpoint", "__duplicate__", "__trial_info__",
        "epoch",  # the step, not a metric
    }
)  # fmt: skip

# (params, tags) of a trial's run from what Tune carries: the driver knows them without building it again
Describe = Callable[[TrialPayload], tuple[dict, dict]]

ENDED = ("TERMINATED", "ERROR")  # Tune's statuses of a trial that will not run again
RESULT_FILE = "result.json"  # Tune's record of a trial's results, one JSON object a line
STORE_CHECK_S = 1.0  # how often the driver looks whether its sqlite store is still the sweep's


# an exception's line in a traceback: its (dotted) type name, then ": message" or nothing
EXCEPTION_LINE = re.compile(r"^(?:[A-Za-z_]\w*\.)*([A-Za-z_]\w*)(?::\s(.*))?$")
ANSI = re.compile(r"\x1b\[[0-9;]*m")
FAILURE_HEADER = re.compile(r"^Failure # \d+.*$", re.M)  # Tune's line before each failure's text


def failure_reason(trial) -> str:
    """One line: the exception that ended the trial, e.g. 'NonFiniteLoss: non-finite training loss ...'.

    Read from Tune's error text, never its pickled copy of the exception: that file is in the Tune storage,
    and unpickling what the storage's other writers may have put there would run their code. The text of the
    last failure is the worker's traceback; a chain of exceptions prints the root one first (the user's, not
    Ray's wrappers around it); an error without a traceback (a worker that died) is its first line."""
    last = FAILURE_HEADER.split(ANSI.sub("", _error_text(trial)))[-1]
    lines = [line for line in last.splitlines() if line.strip()]
    for line in lines:
        match = EXCEPTION_LINE.match(line)
        if match:
            return (match[1] + (f": {match[2]}" if match[2] is not None else ""))[:1000]
    return (lines[0].strip() if lines else "trial failed (no error recorded)")[:1000]


def saved_results(trial) -> list[dict]:
    """Every result the trial reported, as Tune saved them (result.json in its folder of the storage: JSON)."""
    try:
        fs, folder = trial.storage.storage_filesystem, trial.storage.trial_fs_path
        with fs.open_input_stream(f"{folder}/{RESULT_FILE}") as f:
            lines = f.readall().decode().splitlines()
    except (OSError, AttributeError):  # never reported, or no storage: nothing to catch up
        return []
    results = []
    for line in lines:
        try:
            result = json.loads(line)
        except ValueError:  # the last line of a write cut short
            continue
        if isinstance(result, dict):
            results.append(result)
    return results


def _error_text(trial) -> str:
    try:
        local = getattr(trial, "error_file", None)
        if local and os.path.isfile(local):
            with open(local) as f:
                return f.read()
        return str(trial.get_error() or "")
    except Exception:
        return ""


class MlflowTrialLogger(tune.Callback):
    """Picklable (Tune saves it with the experiment, and a Ray Client sweep runs it on the cluster):
    its tracker and write queue are made on first use, in the process that runs it."""

    def __init__(self, tracking_uri: str, sweep_name: str, experiment_id: str, parent_run_id: str, describe: Describe,
                 finished=None, new_parent: bool = False, cost=None):  # fmt: skip
        """`new_parent`: this process created the parent run (SweepTracker.new_parent), so no trial has a run
        yet that this callback did not make: it need not ask MLflow for one before each trial's creation."""
        self.tracking_uri, self.sweep_name = tracking_uri, sweep_name
        self.experiment_id, self.parent_run_id = experiment_id, parent_run_id
        self.describe = describe
        self.new_parent = new_parent
        self.finished = finished  # FinishedTrials of a resumed sweep: their runs are not written again
        self.cost = cost  # tokensweep.sweep.budget.TrialCost: the devices a trial holds, its planned hours
        self._started = {}  # trial_id -> when this session started it
        self._tracker = self._pending = None
        self._trials = self._status = None  # see outcomes()
        self._next_check = 0.0  # check_store

    def __getstate__(self):
        # no clients, no connections, no trials; and a copy may run in another session (a restored
        # experiment, a Ray Client sweep): there, runs it did not make may exist
        return {**self.__dict__, "_tracker": None, "_pending": None, "_trials": None, "_status": None, "_started": {}, "new_parent": False}

    @property
    def tracker(self) -> SweepTracker:
        if self._tracker is None:
            self._tracker = SweepTracker(self.tracking_uri, self.sweep_name)
            self._tracker.experiment_id, self._tracker.parent_run_id = self.experiment_id, self.parent_run_id
            self._tracker.new_parent = self.new_parent
        return self._tracker

    @property
    def pending(self) -> PendingWrites:
        if self._pending is None:
            self._pending = PendingWrites(f"MLflow at {redact(self.tracking_uri)}", check_store=self.store_problem)
        return self._pending

    def store_problem(self) -> str | None:
        """Why the store is no longer the sweep's (deleted, replaced), or None."""
        return store_problem(self.tracker.client, self.tracking_uri, self.parent_run_id)

    def check_store(self, now: bool = False) -> None:
        """A sqlite store deleted or replaced mid-sweep raises nothing on the driver's open connections (they
        write on to the old file): looked at every STORE_CHECK_S, or `now`. A server's says so on a write."""
        if self.pending.gone or sqlite_path(self.tracking_uri) is None or not (now or time.monotonic() >= self._next_check):
            return
        self._next_check = time.monotonic() + STORE_CHECK_S
        why = self.store_problem()
        if why:
            self.pending.lose_store(why)

    @property
    def errors(self) -> int:
        """MLflow writes that failed or were never delivered."""
        return self.pending.failed + self.pending.lost

    def _submit(self, what: str, fn, trial, *args) -> None:
        if self._is_finished(trial):
            return  # a resumed sweep's trial whose run was FINISHED before: never touched again
        self.pending.submit(what, fn, trial, *args)

    def _is_finished(self, trial) -> bool:
        if not self.finished:
            return False
        return self.finished.lookup(trial.trial_id, variant_index(trial.config)) is not None

    def on_step_end(self, iteration, trials, **info):
        self.check_store()
        self.pending.poke()  # replay waiting writes even while no trial reports

    # --- how each trial ended, for the driver's summary: from Tune's events, not read back from storage ---
    def on_step_begin(self, iteration, trials, **info):
        if self._status is None:  # the first step: the trials an earlier session ended were restored before it
            self._restored(trials)

    def on_experiment_end(self, trials, **info):
        if self._status is None:  # no step at all: a resume with every trial already ended before it
            self._restored(trials)
        self._trials = list(trials)
        for trial in trials:  # stopped while running: its hours up to now, which a --resume adds to
            if trial.trial_id in self._started:
                self._submit("note device-hours", self._log_hours, trial, self._session_hours(trial, end=True), None)

    def _restored(self, trials) -> None:
        """The trials of Tune's restored state, before any runs again: their ends, and what MLflow lacks of them."""
        self._status = {t.trial_id: t.status for t in trials if t.status in ENDED}
        for trial in trials:
            self._catch_up(trial)

    def _catch_up(self, trial) -> None:
        """Results Tune kept (the trial's result.json) that its run lacks - written while the store was gone, or to a
        store since replaced - are logged (each epoch once, with the time it was reported), and a trial Tune had
        finished is finished in MLflow: a --resume against a restored or new store records every trial."""
        results = saved_results(trial)
        if not results or self._is_finished(trial):
            return
        for result in results:
            self._submit("log result", self._result, trial, result, int(float(result.get("timestamp") or time.time()) * 1000))
        if trial.status == "TERMINATED":
            self._submit("finish trial run", self._complete, trial, results[-1])

    def outcomes(self) -> list | None:
        """(trial, Tune status) of every trial of the experiment, once it has ended in this process; None
        otherwise (a Ray Client sweep runs this callback on the cluster). The status is how the trial ended
        (TERMINATED, ERROR), or RUNNING / PENDING for one that did not: Tune marks the trials it stops at the
        end of an interrupted experiment TERMINATED, so its own status cannot tell."""
        if self._trials is None:
            return None
        status = self._status or {}
        return [(t, status.get(t.trial_id, "PENDING")) for t in self._trials]

    def _set_status(self, trial, status: str) -> None:
        if self._status is None:
            self._status = {}
        self._status[trial.trial_id] = status

    def on_trial_start(self, iteration, trials, trial, **info):
        self._set_status(trial, "RUNNING")
        self.check_store(now=True)  # a run is never created in a store that replaced the sweep's
        self._started[trial.trial_id] = time.time()
        self._submit("start trial run", self._start, trial)

    def _start(self, trial) -> None:
        params, tags = self.describe(TrialPayload.decode(trial.config))
        self.tracker.start_child(trial.trial_id, str(trial), params, {T.SWEEP: self.sweep_name, **tags})

    def on_trial_result(self, iteration, trials, trial, result, **info):
        # a copy (it may be replayed later), with the time it arrived: a replay of a half-written batch adds no row
        self._submit("log result", self._result, trial, dict(result), now_ms(), self._session_hours(trial))

    def _result(self, trial, result: dict, arrived_ms: int, session_h: float | None = None) -> None:
        """`session_h`: the trial's device-hours in this session so far (None: not known, a result caught up)."""
        run_id = self.tracker.child_id(trial.trial_id)
        if run_id is None:
            self._start(trial)
            run_id = self.tracker.child_id(trial.trial_id)
        if isinstance(result.get("_note"), str):  # the worker's word on how it resumed: on its run and the terminal
            self.tracker.tag(run_id, **{T.RESUME_NOTE: result["_note"][:5000]})
            print(f"tokensweep run: note: {result['_note']}", file=sys.stderr, flush=True)
        step = int(result.get("epoch") or result.get("training_iteration") or 0)
        # A trial restarted from a checkpoint older than its last logged epoch reports those epochs
        # again: a worker killed after reporting an epoch but before Tune registered its checkpoint,
        # or a driver killed between two experiment snapshots (--resume). Each epoch is logged once.
        if step <= self.tracker.last_logged_step(run_id):
            log.info("trial %s: epoch %d is already in MLflow (run %s); not logged again", trial, step, run_id)
            return
        metrics = {k: v for k, v in result.items() if k not in TUNE_KEYS}
        if session_h is not None:  # with every epoch: a driver killed later leaves the hours up to its last epoch
            metrics[COST_METRIC] = self.tracker.hours_before(run_id) + session_h
        self.tracker.log_result(run_id, metrics, step, arrived_ms)

    def on_trial_save(self, iteration, trials, trial, **info):
        checkpoint = trial.latest_checkpoint_result
        epoch = (checkpoint.metrics or {}).get("epoch") if checkpoint is not None else None
        if epoch is not None:
            self._submit("note checkpoint", self._tag, trial, {T.CHECKPOINT_EPOCH: epoch})

    def _tag(self, trial, tags: dict) -> None:
        run_id = self.tracker.child_id(trial.trial_id)
        if run_id is not None:
            self.tracker.tag(run_id, **tags)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._set_status(trial, "TERMINATED")
        self._submit("finish trial run", self._complete, trial, trial.last_result or {}, self._session_hours(trial, end=True))

    def _session_hours(self, trial, end: bool = False) -> float | None:
        """The trial's device-hours in this session: its wall time since it started here x its devices
        (None: no cost to record, or not started here). `end`: the trial will not run again here."""
        started = self._started.pop(trial.trial_id, None) if end else self._started.get(trial.trial_id)
        if self.cost is None or started is None:
            return None
        return self.cost.hours(time.time() - started)

    def _log_hours(self, trial, session_h: float | None, step: int | None, extra: dict | None = None) -> None:
        """device_hours on the trial's run: what earlier sessions spent on it plus this session's (and `extra`);
        at `step` (None: its last logged epoch, where the latest value is read from)."""
        run_id = self.tracker.child_id(trial.trial_id)
        if run_id is None or session_h is None:
            return
        step = self.tracker.last_logged_step(run_id) if step is None else step
        self.tracker.log_result(run_id, {COST_METRIC: self.tracker.hours_before(run_id) + session_h, **(extra or {})}, step)

    def _planned(self, trial) -> dict:
        """planned_device_hours of the trial, where a plan was made."""
        if self.cost is None or not self.cost.has_plan:
            return {}
        return {"planned_device_hours": self.cost.planned_hours(TrialPayload.decode(trial.config).name)}

    def _complete(self, trial, last: dict, session_h: float | None = None) -> None:
        run_id = self.tracker.child_id(trial.trial_id)
        if run_id is None:
            return
        epochs = TrialPayload.decode(trial.config).values.get("epochs")
        epoch = last.get("epoch")
        if isinstance(epoch, int) and isinstance(epochs, int) and epoch < epochs:
            # stopped by the scheduler (ASHA): a finished run without the final measurements
            self.tracker.tag(run_id, **{T.STOPPED_EARLY: True, T.STOPPED_AT_EPOCH: epoch})
        self._log_hours(trial, session_h, int(epoch or 0), self._planned(trial))
        self.tracker.end_child(run_id, "FINISHED")

    def on_trial_error(self, iteration, trials, trial, **info):
        self._set_status(trial, "ERROR")
        self._submit("note device-hours", self._log_hours, trial, self._session_hours(trial, end=True), None)
        self._submit("fail trial run", self._end, trial, "FAILED", failure_reason(trial))

    def on_trial_recover(self, iteration, trials, trial, **info):
        # read now: a write replayed after an outage would see the trial's later state
        tags = {T.RETRIES: trial.num_failures, T.LAST_FAILURE: failure_reason(trial)}
        self._submit("note retry", self._tag, trial, tags)

    def _end(self, trial, status: str, reason: str | None) -> None:
        run_id = self.tracker.child_id(trial.trial_id)
        if run_id is not None:
            self.tracker.end_child(run_id, status, reason)
