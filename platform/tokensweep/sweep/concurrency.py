"""`concurrent_trials`: how many other trials of the sweep ran on a trial's node while it measured.

Every report of a trial carries when its attempt started and when it reported, and its last report
when it measured (tokensweep.sweep.trainable.MeasureWindow); Tune keeps every report in the trial's
result.json. After the training trials end, the driver reads them back and, for each trial that
measured, counts the most other trials that ran at once on the same Ray node during that window. Read
from Tune's storage, so a driver killed and resumed counts the trials of its earlier sessions too.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

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
