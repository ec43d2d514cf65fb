"""What the driver writes to MLflow itself: the sweep's parent run (opened, and closed whatever happened)
and each trial's params and tags (DescribeTrial, for the Tune callback that creates the trial's run)."""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import logging
import os
import sys
import time

from tokensweep.spec import SweepSpec
from tokensweep.sweep.options import RunOptions
from tokensweep.sweep.space import TrialPayload
from tokensweep.tracking import tags as T
from tokensweep.tracking.tracker import SweepTracker
from tokensweep.tracking.uris import redact, server_unreachable

log = logging.getLogger(__name__)

TRACKING_WAIT_ENV = "TOKENSWEEP_TRACKING_WAIT_S"
DEFAULT_TRACKING_WAIT_S = 120.0  # how long a finished sweep waits for an unreachable tracking server
STOPPED_TRACKING_WAIT_S = 10.0  # ... and a sweep stopped by a signal, which must end soon (a scheduler's grace period)
CLOSE_RUNS = "close the sweep's runs"  # the last write of a sweep, as a report of lost writes names it


def close_parent(tracker, callback, status, tags, timings, started, quiet=False) -> None:
    """Close what is still RUNNING and end the parent run: one more write after those still waiting, in their
    order, given the sweep's tracking wait; what never arrives is reported with them (PendingWrites.drain)
    and counted in callback.errors. `quiet`: the sweep was stopped by a signal - the one line tokensweep run
    prints says what was closed."""

    def close() -> None:
        tracker.killed.extend(tracker.close_running_children("KILLED"))  # a replayed close adds what it closed
        if callback.errors:
            tags[T.TRACKING_ERRORS] = callback.errors
        timings["sweep_s"] = time.perf_counter() - started
        tags.update(time_tags(tracker, timings))
        if not quiet:  # a sweep stopped by a signal must end soon: its --resume logs them
            log_summary(tracker, getattr(callback, "cost", None), tags)
        tracker.end_parent(status, tags)

    wait = float(os.environ.get(TRACKING_WAIT_ENV, DEFAULT_TRACKING_WAIT_S))
    callback.pending.submit(CLOSE_RUNS, close)
    if callback.pending.drain(min(wait, STOPPED_TRACKING_WAIT_S) if quiet else wait):  # the close is the last write
        print(
            f"tokensweep run: error: MLflow at {redact(tracker.tracking_uri)} is unreachable at the end of "
            f"the sweep; its parent run {tracker.parent_run_id} and unfinished trial runs were not closed",
            file=sys.stderr,
        )
    elif tracker.killed and not quiet:
        log.warning("%d trial run(s) had not ended; marked KILLED", len(tracker.killed))


def time_tags(tracker: SweepTracker, timings: dict) -> dict[str, str]:
    """The parent's tokensweep.time.* tags: this run's phases, plus a resumed sweep's earlier runs' (its
    tags say what they spent), so that they are the whole sweep's."""
    before = tracker.tags_of(tracker.parent_run_id) if tracker.resumed_parent else {}
    totals = dict(timings)
    for key, text in before.items():
        phase = key.removeprefix(T.TIME_PREFIX)
        if phase != key:
            try:
                totals[phase] = totals.get(phase, 0.0) + float(text)
            except ValueError:  # not written by tokensweep: this run's figure stands
                pass
    return {f"{T.TIME_PREFIX}{k}": f"{v:.1f}" for k, v in totals.items()}


def log_summary(tracker: SweepTracker, cost=None, tags: dict | None = None) -> None:
    """What the sweep found, as its parent run's metrics (vocab.SWEEP_FIELDS): MLflow's run page lists
    them. A figure that cannot be made is a warning; an unreachable store is close_parent's to report."""
    if server_unreachable(tracker.tracking_uri):
        return
    try:
        table = runs_table_of(tracker)
        metrics = {**summary_metrics(table), **cost_metrics(table, cost, tags or {})}
        if metrics:
            tracker.log_result(tracker.parent_run_id, metrics, step=0)
    except Exception as err:
        if is_unavailable(err):
            raise
        log.warning("the sweep's summary metrics were not logged: %s", redact(str(err)))


def runs_table_of(tracker: SweepTracker):
    from tokensweep.tracking.export import runs_table

    return runs_table(tracker.sweep_name, tracker.tracking_uri, parent_run_id=tracker.parent_run_id)


def cost_metrics(table, cost, tags: dict) -> dict[str, float]:
    """The sweep's device-hours and wall time (its phases summed over resumes, Ray's and MLflow's import
    included, the plan's own calibration not) against the plan's; nothing without a plan."""
    if cost is None or cost.wall_s is None or "device_hours" not in table.column_names:
        return {}
    actual = sum(h for h in table.column("device_hours").to_pylist() if h is not None)
    planned = sum(h for h in table.column("planned_device_hours").to_pylist() if h is not None)
    wall = sum(float(tags.get(f"{T.TIME_PREFIX}{phase}", 0.0)) for phase in ("sweep_s", "import_s"))
    metrics = {"sweep_device_hours": actual, "planned_sweep_device_hours": planned, "sweep_wall_s": wall,
               "planned_wall_s": cost.wall_s, "wall_ratio": wall / cost.wall_s}  # fmt: skip
    if planned > 0:
        metrics["device_hours_ratio"] = actual / planned
    return metrics


def summary_metrics(table) -> dict[str, float]:
    """configurations, front_size (of the means: top-1 vs images/sec, as `tokensweep dashboard` draws it),
    and the best configuration's mean top-1 with its 95% interval (several seeds only)."""
    from dashboards.analysis import analyse
    from dashboards.errors import InputError
    from dashboards.runs import Objective

    try:
        analysis = analyse(table, Objective("images_per_sec", maximize=True), Objective("top1", maximize=True))
    except InputError:  # no trial reported both figures yet: nothing to summarise
        return {}
    configs = analysis.configurations
    metrics = {"configurations": len(configs), "front_size": len(analysis.config_front)}
    scored = [c for c in configs if c.top1 is not None]
    if scored:
        best = max(scored, key=lambda c: c.top1.mean).top1
        metrics["best_top1_mean"] = best.mean
        if best.has_interval:
            metrics["best_top1_ci_low"], metrics["best_top1_ci_high"] = best.low, best.high
    return metrics


def open_tracker(tracking_uri: str, sweep_name: str) -> SweepTracker:
    tracker = SweepTracker(tracking_uri, sweep_name)
    tracker.ensure_experiment()  # creates the store on first use (a new sqlite file: its tables, 1-2.5 s)
    return tracker


def open_tracker_in_background(tracking_uri: str, sweep_name: str) -> concurrent.futures.Future:
    """open_tracker on a thread, while ray.init mostly waits for Ray's processes to come up."""
    pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="mlflow-setup")
    future = pool.submit(open_tracker, tracking_uri, sweep_name)
    pool.shutdown(wait=False)
    return future


def spec_hash(spec: SweepSpec) -> str:
    """Of the trials a spec defines (not of its comments or the order of its keys)."""
    doc = {k: v for k, v in spec.resolved.items() if k not in ("resources", "failure", "tracking", "bench")}
    doc["sweep"] = {k: v for k, v in doc.get("sweep", {}).items() if k != "budget_hours"}  # what it may spend, not run
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def start_parent_run(tracker: SweepTracker, spec: SweepSpec, options: RunOptions, tune_path: str) -> str:
    tags = {
        T.SEARCH: spec.search,
        T.TRIALS: spec.num_trials,
        "gpu_shared": spec.gpu_shared,
        T.SPEC_SHA256: spec_hash(spec),
        **T.source_tags(spec.source),
    }
    if spec.description:
        tags[T.NOTE] = spec.description
    parent = tracker.start_parent(tune_path=tune_path, command=options.command, tags=tags, spec_text=spec.text,
                                  spec_name=spec.source, resolved=spec.resolved, resume=options.resume)  # fmt: skip
    if options.resume and tracker.resumed_parent:
        forget_failure(tracker, parent)
        original = tracker.tags_of(parent).get(T.SPEC_SHA256)
        if original and original != spec_hash(spec):  # a resumed sweep runs the trials it started with
            print(
                f"tokensweep run: note: {spec.source} (with --set) differs from the spec sweep {spec.name!r} started "
                "with; a resumed sweep continues its original trials and ignores the changes",
                file=sys.stderr,
            )
    elif options.resume:
        print(
            f"tokensweep run: note: no parent run of this sweep in {redact(options.tracking_uri)}; "
            "started a new one (trials finished before are not in it)",
            file=sys.stderr,
        )
    return parent


def forget_failure(tracker: SweepTracker, parent: str) -> None:
    """A resumed sweep's parent run: the reason an earlier session failed is not this session's; it is kept
    as tokensweep.previous_failure (as a resumed trial's run keeps its own)."""
    reason = tracker.tags_of(parent).get(T.FAILURE_REASON)
    if reason:
        tracker.client.delete_tag(parent, T.FAILURE_REASON)
        tracker.tag(parent, **{T.PREVIOUS_FAILURE: reason})


class DescribeTrial:
    """(params, tags) of a trial's child run: from the config validation built (grid) or, for an
    Optuna suggestion, the one config built for it here."""

    def __init__(self, spec: SweepSpec):
        self.configs = [v.config for v in spec.variants]
        self.source = spec.source

    def __call__(self, payload: TrialPayload) -> tuple[dict, dict]:
        if payload.index is not None:
            config = self.configs[payload.index]
        else:
            from trials import TrialConfig

            config = TrialConfig.from_dict(payload.values)
        params = config.params()
        tags = {T.CONFIG_ID: config.config_id(), "gpu_shared": config.gpu_shared}
        if payload.optuna_number is not None:
            params["optuna_trial_number"] = payload.optuna_number
        if payload.index is not None:
            tags[T.VARIANT] = payload.index
        return params, {**tags, **T.source_tags(self.source)}
