"""The driver: a Sweep and its phases (start -> tune -> stages -> close), the MLflow parent run, the stages
after training. run_sweep(spec, options) is Sweep(spec, options).run().

Trials a resumed sweep leaves alone: those whose MLflow run is FINISHED with every epoch.

Tune's saved state lags what happened: it is written every few seconds, so a driver killed in between
resumes trials that had already finished (their last epochs, their end, even the trial itself may be
missing from it). MLflow knows better: a trial's run is FINISHED only after its last result was written
(the tracking callback's writes are kept in order). So on --resume, before Tune starts, the driver reads
the parent's finished trial runs (`FinishedTrials.read`), and
- the trainable (tokensweep.sweep.worker) of such a trial reports the run's final metrics back to
  Tune at once - for Tune's record and its searcher - and returns: nothing is trained;
- the tracking callback (MlflowTrialLogger) writes nothing for it: its run is not set RUNNING again,
  its end time does not move.
A grid trial is known by its Tune trial id and by its variant (Tune may make a trial it lost again under
a new id); an Optuna trial by its trial id only. No Ray import: picklable, and carried to the trials
with `tune.with_parameters`.

What the driver writes to MLflow itself: the sweep's parent run (opened, and closed whatever happened)
and each trial's params and tags (DescribeTrial, for the Tune callback that creates the trial's run).

What the driver does once a sweep's training trials (and Optuna's confirmation trials) have ended,
before it closes the parent run:

    concurrent_trials   on every child run that measured (tokensweep.sweep.bench)
    the bench stage     every architecture benched alone (tokensweep.sweep.bench)
    findings            which differences the sweep resolved (tokensweep.sweep.progress)

Everything here reads the trials back from Tune's saved state, so a resumed driver does the same.

A sweep: a validated SweepSpec on Ray Tune, every trial an MLflow child run of the sweep's parent run.

    Tuner(with_resources(train_trial, {cpu, gpu}), search_alg = the grid's GridSearcher or Optuna)
      -> one `train_trial` per trial (tokensweep.sweep.worker): `trials.run_trial(config, report)`
      -> `MlflowTrialLogger` (a Tune callback here, on the driver) writes each trial's child run.

Imports Ray and MLflow at import time: `tokensweep run` imports it only after the spec has been
validated, so bad input never waits for (or starts) Ray.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass, field

import ray
from ray import tune

from tokensweep.payload import TrialPayload, grid_config, search_base_config
from tokensweep.plugins import export_plugin_roots
from tokensweep.spec import SweepSpec
from tokensweep.sweep import RunOptions, SweepOutcome, bench, check_local_resources, budget, guards, progress, tuner
from tokensweep.sweep.bench import BenchOutcome, run_stage, skip_stage
from tokensweep.sweep.confirm import confirm_path, run_confirmation
from tokensweep.sweep.guards import (
    StopOnSignal,
    SweepInterrupted,
    SweepLock,
    close_without_ray,
    interrupted_within,
    signal_name,
    stopped_by,
)
from tokensweep.sweep.tuner import one_line_ray_errors
from tokensweep.tracking import tags as T
from tokensweep.tracking.callback import ENDED, MlflowTrialLogger
from tokensweep.tracking.store import (
    credentials_to_environment,
    default_optuna_storage,
    is_unavailable,
    mlflow_error,
    redact,
    server_unreachable,
    use_driver_http_settings,
)
from tokensweep.tracking.tracker import SweepTracker


@dataclasses.dataclass(frozen=True)
class FinishedTrials:
    final: dict  # trial id -> the final metrics its run holds (with "epoch": the last epoch logged)
    by_variant: dict  # grid variant index -> the trial id whose run finished it

    @classmethod
    def read(cls, tracker) -> FinishedTrials:
        """From the parent run's children (a SweepTracker whose parent_run_id is set)."""
        final, by_variant = {}, {}
        for run in tracker.finished_children():
            final[run.trial_id] = {**run.metrics, "epoch": run.epoch}
            if run.variant is not None:
                by_variant[run.variant] = run.trial_id
        return cls(final, by_variant)

    def lookup(self, trial_id: str, variant: int | None) -> dict | None:
        """The final metrics of the finished run this trial is, else None (the trial still has to run)."""
        if trial_id in self.final:
            return self.final[trial_id]
        if variant is not None and variant in self.by_variant:
            return self.final[self.by_variant[variant]]
        return None

    def __len__(self) -> int:
        return len(self.final)


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
    callback.check_store(now=True)  # a store deleted since the last look: the close is not written to its old file
    callback.pending.submit(CLOSE_RUNS, close)
    lost = callback.pending.drain(min(wait, STOPPED_TRACKING_WAIT_S) if quiet else wait)  # the close is the last write
    if lost and not callback.pending.gone:  # a store that is gone said so, and the --resume that records it all
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


def start_parent_run(tracker: SweepTracker, spec: SweepSpec, options: RunOptions, tune_path: str, sweep_id: str | None) -> str:
    """`sweep_id`: from the sweep's Tune folder (tuner.SWEEP_ID_FILE), which finds its parent on --resume."""
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
                                  spec_name=spec.source, resolved=spec.resolved, resume=options.resume,
                                  sweep_id=sweep_id)  # fmt: skip
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
            f"tokensweep run: note: no parent run of this sweep in {redact(options.tracking_uri)}; started a new "
            "one, and the trials that ran before are recorded from Tune's saved results",
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
        bench.record_concurrent_trials(tracker, trials, bench.child_runs(tracker))
    except Exception as err:  # a figure about the measurement's conditions: never fails the sweep
        log.warning("concurrent_trials not recorded: %s", mlflow_error(err))
    report = StageReport()
    if status != "KILLED" and not spec.bench:
        report.bench = skip_stage(spec, tracker, configs, callback.pending)
    elif status != "KILLED":
        report.bench = run_stage(spec, tracker, configs)
        timings["bench_s"] = time.perf_counter() - started
    table = report.bench.table if report.bench else None
    hint = progress.CONFIRM_HINT if spec.search == "optuna" else progress.SEEDS_HINT
    report.findings = progress.findings(table, configurations(trials, configs), hint, spec.name)
    return report


def configurations(tune_trials, configs: dict) -> list[tuple[str, list[float]]]:
    """(label, top-1 of each finished trial) per config_id, in the trials' order."""
    groups: dict[str, tuple[str, list[float]]] = {}
    for t in tune_trials:
        config_id = configs[t.trial_id].config_id()
        label = progress.config_label(TrialPayload.decode(t.config).name)
        entry = groups.setdefault(config_id, (label, []))
        top1 = (t.last_result or {}).get("top1")
        if t.status == "TERMINATED" and isinstance(top1, (int, float)):
            entry[1].append(float(top1))
    return list(groups.values())


SNAPSHOT_2S_TRIALS = 200  # sweeps up to this size snapshot Tune's state every 2 s (configure_tune)


def run_sweep(spec: SweepSpec, options: RunOptions, timings: dict | None = None) -> SweepOutcome:
    """`timings`: phases before this call (validate_s, import_s), recorded with the sweep's own."""
    return Sweep(spec, options, timings).run()


class Sweep:
    """One sweep, from its checks to its outcome: what was asked (spec, options), where Tune keeps it
    (tune_path), the MLflow writer and its Tune callback, how it stops (stop), how long each phase took
    (timings). Its methods are the phases, in order: start (Ray, the parent run), tune (the trials, then
    Optuna's confirmation), run_stages (concurrent trials, the bench, the findings), close (the parent run)."""

    def __init__(self, spec: SweepSpec, options: RunOptions, timings: dict | None = None):
        self.spec, self.options = spec, options
        self.started, self.timings = time.perf_counter(), dict(timings or {})
        self.lock = SweepLock(options.storage, spec.name, options.command)
        self.tune_path = self.optuna_url = self.stop = None
        self.tracker = self.callback = self.parent = self.finished = None
        self.status, self.trials, self.stages, self.tracking_errors = "FAILED", [], None, 0
        self.gate = budget.BudgetGate(spec.budget_hours, budget.trial_cost(options.plan, spec))  # what trials may start

    def run(self) -> SweepOutcome:
        spec, options = self.spec, self.options
        self.lock.check()  # another driver runs this sweep: one line, before anything else is checked or written
        self.tune_path = tuner.check_storage(spec, options)
        check_local_resources(spec, options)  # trials a local Ray could never start: refused before it starts
        if not options.starts_local_ray():
            guards.probe(options.ray_address())  # nothing listens there: one line, before the lock is written
        self.optuna_url = optuna_storage(spec, options)
        with self.lock, StopOnSignal() as stop:  # one driver per sweep from here; Ctrl-C / SIGTERM / SIGHUP stop it in order
            self.stop = stop
            stop.before_exit.append(self.lock.release)
            if options.starts_local_ray():  # the process ends from the watchdog: no Ray process outlives it
                stop.before_exit.append(lambda: guards.end_processes(guards.own_processes()))
            try:
                return self.on_ray()
            except (SweepInterrupted, Exception) as err:  # before the sweep's MLflow parent run existed: nothing to close
                if not interrupted_within(err):
                    raise
                return self.stopped_before_parent()
            except SystemExit as exit_:  # SIGTERM while ray.init had Ray's handler in place of ours
                if exit_.code != signal.SIGTERM:
                    raise
                stop.signum = stop.signum or signal.SIGTERM
                return self.stopped_before_parent()

    def on_ray(self) -> SweepOutcome:
        """The phases that need Ray; Ray is shut down (or left) whatever happened."""
        if self.options.fresh:
            tuner.delete_tune_dir(self.tune_path)
            if self.optuna_url:
                tuner.delete_optuna_study(self.optuna_url, self.spec.name)
        configure_tune(self.spec)
        if self.options.starts_local_ray():
            export_plugin_roots(self.spec.plugins)  # its workers import the user's embeddings as this process did
        self.options = dataclasses.replace(self.options, tracking_uri=credentials_to_environment(self.options.tracking_uri))
        try:
            self.start()
            self.tune_stages_close()
        finally:
            with timed(self.timings, "ray_shutdown_s"):
                guards.shutdown(self.options)
        return self.outcome()

    def start(self) -> None:
        """Ray started or joined, the MLflow store opened, the sweep's parent run started, the Tune callback."""
        spec, options, stop = self.spec, self.options, self.stop
        with timed(self.timings, "ray_start_s"):  # a new local Ray, or connecting
            # A new local Ray can only fail by crashing, and its GPU check cannot refuse gpus = 0 or "auto":
            # then the MLflow store is set up while Ray starts. Otherwise after, so bad input writes nothing.
            overlap = options.starts_local_ray() and not (spec.gpus or 0) > 0
            early_tracker = open_tracker_in_background(options.tracking_uri, spec.name) if overlap else None
            guards.init_ray(options)
        stop.install()  # ray.init put Ray's SIGTERM handler (SystemExit) in place of ours
        use_driver_http_settings()  # after ray.init: a local Ray's trials keep MLflow's own HTTP retries
        guards.warn_if_storage_is_not_shared(options.storage)
        guards.note_unschedulable(spec, options)
        self.spec = spec = guards.resolve_gpus(spec, options)
        with timed(self.timings, "mlflow_setup_s"):  # what store setup Ray's start did not hide, and the parent run
            self.tracker = tracker = early_tracker.result() if early_tracker else open_tracker(options.tracking_uri, spec.name)
            stop.parent_started()  # from here a signal is acted on where the parent run can be closed
            sweep_id = tuner.read_sweep_id(self.tune_path) if options.resume else tuner.write_sweep_id(self.tune_path)
            self.parent = start_parent_run(tracker, spec, options, self.tune_path, sweep_id)
            stop.on_deadline = lambda: close_without_ray(tracker, stop.signum, options.command)  # Ray hung up
            # trials whose runs are done: neither run nor touched again, however late Tune's saved state is
            self.finished = FinishedTrials.read(tracker) if options.resume and tracker.resumed_parent else None
        self.callback = MlflowTrialLogger(options.tracking_uri, spec.name, tracker.experiment_id, self.parent,
                                          DescribeTrial(spec), self.finished, new_parent=tracker.new_parent,
                                          cost=self.gate.cost)  # fmt: skip

    def tune_stages_close(self) -> None:
        """Tune's run and the stages after it, then the parent run closed with what happened, whatever happened."""
        tags = {}
        try:
            tags = self.tune()
            if not self.stop.stopped and not self.callback.pending.gone:  # a store that is gone gets the stages on --resume
                self.run_stages()
        except KeyboardInterrupt:
            self.status, tags = "KILLED", {T.STOPPED: "interrupted"}
            raise
        except SystemExit:  # Ray turns SIGTERM into SystemExit in the driver
            self.status, tags = "KILLED", {T.STOPPED: "terminated"}
            raise
        except (SweepInterrupted, Exception) as err:
            if interrupted_within(err):  # before Tune ran, or during the bench (also as Ray's SystemError around it)
                self.status, tags = "KILLED", {T.STOPPED: stopped_by(self.stop.signum)}
                self.trials = self.trials or tuner.summarise(self.tune_path, missing_ok=True)
            else:
                self.status, tags = "FAILED", {T.FAILURE_REASON: redact(f"{type(err).__name__}: {err}")[:1000]}
                full = tuner.full_storage(self.tune_path)  # then Tune fails reading what it half wrote: the disk is the cause
                if full is None:
                    raise
                tags[T.FAILURE_REASON] = tuner.report_full(self.tune_path, full)
                self.trials = tuner.summarise(self.tune_path, missing_ok=True)
        finally:
            self.close(tags)
        self.tracking_errors = self.callback.errors

    def tune(self) -> dict:
        """The trials, then Optuna's confirmation: the sweep's status, and the parent run's tags that say it."""
        stop, tune_path = self.stop, self.tune_path
        self.tracker.tag(self.tracker.parent_run_id, **{T.TUNE_STARTED: f"{time.time():.3f}"})
        with timed(self.timings, "tune_s"):
            with stop.tune_running():
                fit(self.spec, self.options, tune_path, self.callback, self.optuna_url, self.finished, self.gate)
            outcomes = self.callback.outcomes()  # before the confirmation's experiment ends in the same callback
            confirmed = []
            if not stop.stopped and not self.gate.not_started:  # a search the budget cut short: its front is not final
                with stop.tune_running():
                    confirmed = run_confirmation(self.spec, self.options, tune_path, self.callback)  # optuna: [search] confirm_seeds
        self.trials = tuner.summarise(tune_path, outcomes) + confirmed
        failed = sum(1 for t in self.trials if t.status == "ERROR")
        unfinished = sum(1 for t in self.trials if t.status not in ENDED)
        self.status = "FAILED" if failed else "KILLED" if unfinished or stop.stopped else "FINISHED"
        tags = {T.FAILED_TRIALS: failed, T.UNFINISHED_TRIALS: unfinished}
        if self.gate.not_started:
            tags[T.BUDGET_NOT_STARTED] = ", ".join(self.gate.not_started)[:5000]
        full = tuner.full_storage(tune_path) if failed else None  # trials failed saving checkpoints: the disk is why
        if full is not None:
            tags[T.FAILURE_REASON] = tuner.report_full(tune_path, full)
        if stop.stopped:
            tags[T.STOPPED] = stopped_by(stop.signum)
        return tags

    def run_stages(self) -> None:
        """concurrent_trials, the bench, the findings: a signal ends them at once, the trials are kept."""
        with self.stop.stops_at_once():  # the bench can take minutes
            self.stages = after_training(self.spec, self.tracker, self.callback, self.tune_path, self.status, self.timings)

    def close(self, tags: dict) -> None:
        close_parent(self.tracker, self.callback, self.status, tags, self.timings, self.started, quiet=self.stop.stopped)

    def outcome(self) -> SweepOutcome:
        stop, stages = self.stop, self.stages
        bench_failed = stages is not None and stages.failed  # a failed bench: exit 1, the trials kept
        code = stop.exit_code or (0 if self.status == "FINISHED" and not self.tracking_errors and not bench_failed else 1)
        interrupted = signal_name(stop.signum) if stop.stopped else None
        resumable = bool(interrupted) and tune.Tuner.can_restore(self.tune_path)
        if self.gate.not_started and code == 0:
            code = 1  # trials the budget left: the sweep is not done
        return SweepOutcome(code, self.parent, self.tune_path, self.trials, self.timings, self.tracking_errors,
                            stages=stages, interrupted=interrupted, killed=self.tracker.killed, resumable=resumable,
                            experiment_id=self.tracker.experiment_id,
                            budget_note=self.gate.summary())  # fmt: skip

    def stopped_before_parent(self) -> SweepOutcome:
        stop = self.stop
        return SweepOutcome(stop.exit_code, None, self.tune_path, [], self.timings, interrupted=signal_name(stop.signum))


@contextlib.contextmanager
def timed(timings: dict, key: str):
    t = time.perf_counter()
    try:
        yield
    finally:
        timings[key] = time.perf_counter() - t


def optuna_storage(spec: SweepSpec, options: RunOptions) -> str | None:
    if spec.search != "optuna":
        return None
    return options.optuna_storage or default_optuna_storage(options.tracking_uri)


def configure_tune(spec: SweepSpec) -> None:
    # Tune snapshots the experiment state (which trials are done, their latest checkpoint) every 10+ s
    # by default. A driver killed in between resumes from that snapshot; trials that had finished since
    # are left alone anyway (FinishedTrials, read from MLflow: tested with snapshots 600 s apart), so the
    # period only decides how many epochs of the running trials are trained again after a crash. Each
    # snapshot rewrites every trial so far (~20 KB each), so a fixed period makes a long sweep's total
    # quadratic: above SNAPSHOT_2S_TRIALS, Tune's "auto" (at most ~5% of the driver's time, at least
    # every 10 s); up to it, every 2 s costs at most a few ms per trial. Its warning about frequent
    # snapshots (forced by num_to_keep) is expected here.
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "2" if spec.num_trials <= SNAPSHOT_2S_TRIALS else "auto")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    one_line_ray_errors()  # a failed save of Tune's state: one line each, not pyarrow's traceback
    # "Failed to fetch metrics" of a trial that has not reported yet (a stopped sweep's waiting trials), when
    # Tune reads its own results back: not news; what the trials did is in MLflow and the summary
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
    if spec.search == "optuna":
        # Tune insists that every result carries the searcher's metrics, but the objectives
        # (images_per_sec) are measured after the last epoch only: OptunaSearch reads the last
        # result anyway. train_trial checks that the last report has them instead.
        os.environ["TUNE_DISABLE_STRICT_METRIC_CHECKING"] = "1"


def fit(spec: SweepSpec, options: RunOptions, tune_path: str, callback, optuna_url, finished=None, gate=None):
    callbacks = [callback, *tuner.optuna_callbacks(spec, optuna_url, callback, options.tracking_uri),
                 *progress.tune_callbacks(spec, options, cost=callback.cost)]  # MLflow, its Optuna links, the terminal, Tune's files  # fmt: skip
    trainable = tuner.trainable_of(spec, finished)
    if options.resume:
        job = tuner.restored(tune_path, trainable, callbacks, options.verbose)
        if gate is not None:
            budget.set_gate(job, gate)
        return job.fit()
    platform = tuner.platform_of(spec, options, callback.parent_run_id)
    if spec.search == "grid":
        configs = [grid_config(i, v.name, v.values, platform) for i, v in enumerate(spec.variants)]
        searcher, param_space, samples = tuner.GridSearcher(configs, gate), {}, len(configs)
    else:
        optuna = tuner.optuna_searcher(spec, optuna_url, platform.search_throughput, options.verbose)
        searcher = budget.SearchUnderBudget(optuna, gate, spec.num_samples)
        param_space, samples = search_base_config(spec.base, platform), spec.num_samples
    search_alg = budget.searching(searcher, spec.max_concurrent_trials)
    return tuner.build(spec, trainable, name=spec.name, storage_path=options.storage, search_alg=search_alg,
                       samples=samples, callbacks=callbacks, verbose=options.verbose, scheduler=tuner.scheduler(spec),
                       param_space=param_space).fit()  # fmt: skip
