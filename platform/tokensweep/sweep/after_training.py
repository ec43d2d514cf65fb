"""What the driver does once a sweep's training trials (and Optuna's confirmation trials) have ended,
before it closes the parent run:

    concurrent_trials   on every child run that measured (tokensweep.sweep.concurrency)
    the bench stage     every architecture benched alone (tokensweep.sweep.bench_stage)
    findings            which differences the sweep resolved (tokensweep.sweep.findings)

Everything here reads the trials back from Tune's saved state, so a resumed driver does the same.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import dataclass, field

from ray import tune

from tokensweep.sweep import bench_record, concurrency, findings
from tokensweep.sweep.bench_stage import BenchOutcome, run_stage, skip_stage
from tokensweep.sweep.confirm import confirm_path
from tokensweep.sweep.parent_run import DEFAULT_TRACKING_WAIT_S, TRACKING_WAIT_ENV
from tokensweep.sweep.space import TrialPayload
from tokensweep.tracking.store import mlflow_error
from tokensweep.tracking.uris import redact, server_unreachable

log = logging.getLogger(__name__)


@dataclass
class StageReport:
    bench: BenchOutcome | None = None
    findings: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return self.bench is not None and self.bench.failed


def sweep_trials(tune_path: str) -> list:
    """The Tune trials of the sweep: the search's or grid's, then Optuna's confirmation trials if any."""
    trials = list(tune.ExperimentAnalysis(tune_path).trials)
    if tune.Tuner.can_restore(confirm_path(tune_path)):
        trials += tune.ExperimentAnalysis(confirm_path(tune_path)).trials
    return trials


def configs_of(spec, tune_trials) -> dict:
    """{tune trial id: TrialConfig}: a grid trial's as validation built it, any other built from its values."""
    from trials import TrialConfig

    out = {}
    for t in tune_trials:
        payload = TrialPayload.decode(t.config)
        if payload.index is not None and payload.index < len(spec.variants):
            out[t.trial_id] = spec.variants[payload.index].config
        else:
            out[t.trial_id] = TrialConfig.from_dict(payload.values)
    return out


def wait_for_tracking(tracker, callback) -> None:
    """The trials' last writes delivered (the stages read their runs), and the store answering, or the
    sweep's tracking wait spent (TOKENSWEEP_TRACKING_WAIT_S, as at the end of a sweep): a server that is
    down when the trials end fails no stage that could wait for it."""

    wait_s = float(os.environ.get(TRACKING_WAIT_ENV, DEFAULT_TRACKING_WAIT_S))
    deadline = time.monotonic() + wait_s
    callback.pending.wait(wait_s)  # what is still waiting then is reported with the sweep's last write
    noted = False
    while server_unreachable(tracker.tracking_uri) and time.monotonic() < deadline:
        if not noted:
            print(f"tokensweep run: note: waiting for MLflow at {redact(tracker.tracking_uri)} before the bench",
                  file=sys.stderr, flush=True)  # fmt: skip
            noted = True
        time.sleep(1.0)


def after_training(spec, tracker, callback, tune_path: str, status: str, timings: dict) -> StageReport:
    """Run the stages that apply; a KILLED sweep (trials unfinished) leaves the bench for --resume."""
    started = time.perf_counter()
    wait_for_tracking(tracker, callback)
    trials = sweep_trials(tune_path)
    configs = configs_of(spec, trials)
    try:
        concurrency.record_concurrent_trials(tracker, trials, bench_record.child_runs(tracker))
    except Exception as err:  # a figure about the measurement's conditions: never fails the sweep
        log.warning("concurrent_trials not recorded: %s", mlflow_error(err))
    report = StageReport()
    if status != "KILLED" and not spec.bench:
        report.bench = skip_stage(spec, tracker, configs, callback.pending)
    elif status != "KILLED":
        report.bench = run_stage(spec, tracker, configs)
        timings["bench_s"] = time.perf_counter() - started
    table = report.bench.table if report.bench else None
    hint = findings.CONFIRM_HINT if spec.search == "optuna" else findings.SEEDS_HINT
    report.findings = findings.findings(table, configurations(trials, configs), hint, spec.name)
    return report


def configurations(tune_trials, configs: dict) -> list[tuple[str, list[float]]]:
    """(label, top-1 of each finished trial) per config_id, in the trials' order."""
    groups: dict[str, tuple[str, list[float]]] = {}
    for t in tune_trials:
        config_id = configs[t.trial_id].config_id()
        label = findings.config_label(TrialPayload.decode(t.config).name)
        entry = groups.setdefault(config_id, (label, []))
        top1 = (t.last_result or {}).get("top1")
        if t.status == "TERMINATED" and isinstance(top1, (int, float)):
            entry[1].append(float(top1))
    return list(groups.values())
