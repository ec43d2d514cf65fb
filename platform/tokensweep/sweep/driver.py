"""run_sweep: a validated SweepSpec on Ray Tune, every trial an MLflow child run of the sweep's parent run.

    Tuner(with_resources(train_trial, {cpu, gpu}), search_alg = the grid's GridSearcher or Optuna)
      -> one `train_trial` per trial (tokensweep.sweep.trainable): `trials.run_trial(config, report)`
      -> `MlflowTrialLogger` (a Tune callback here, on the driver) writes each trial's child run.

Imports Ray and MLflow at import time: `tokensweep run` imports it only after the spec has been
validated, so bad input never waits for (or starts) Ray.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import signal
import time

import ray
from ray import tune

from tokensweep.plugins import export_plugin_roots
from tokensweep.spec import SweepSpec
from tokensweep.sweep import budget, progress, ray_session, search_throughput, searchers, storage, tune_state
from tokensweep.sweep.after_training import after_training
from tokensweep.sweep.confirm import run_confirmation
from tokensweep.sweep.finished import FinishedTrials
from tokensweep.sweep.lock import SweepLock
from tokensweep.sweep.options import RunOptions, SweepOutcome, TrialOutcome
from tokensweep.sweep.parent_run import DescribeTrial, close_parent, open_tracker, open_tracker_in_background, start_parent_run
from tokensweep.sweep.ray_logs import one_line_ray_errors
from tokensweep.sweep.signals import StopOnSignal, SweepInterrupted, close_without_ray, interrupted_within, signal_name, stopped_by
from tokensweep.sweep.space import Platform, TrialPayload, grid_config, search_base_config
from tokensweep.sweep.trainable import train_trial
from tokensweep.sweep.tune_state import ForgetDeletedCheckpoints, experiment_path, guards
from tokensweep.tracking import tags as T
from tokensweep.tracking.store import use_driver_http_settings
from tokensweep.tracking.tune_callback import MlflowTrialLogger
from tokensweep.tracking.uris import credentials_to_environment, default_optuna_storage, redact

log = logging.getLogger(__name__)

SNAPSHOT_2S_TRIALS = 200  # sweeps up to this size snapshot Tune's state every 2 s (configure_tune)


def run_sweep(spec: SweepSpec, options: RunOptions, timings: dict | None = None) -> SweepOutcome:
    """`timings`: phases before this call (validate_s, import_s), recorded with the sweep's own."""
    started, timings = time.perf_counter(), dict(timings or {})
    lock = SweepLock(options.storage, spec.name, options.command)
    lock.check()  # another driver runs this sweep: one line, before anything else is checked or written
    tune_path = storage.check_storage(spec, options)
    ray_session.check_cpus(spec, options)  # trials a local Ray could never start: refused before it starts
    if not ray_session.starts_local_ray(options):
        ray_session.probe(ray_session.ray_address(options))  # nothing listens there: one line, before the lock is written
    optuna_url = optuna_storage(spec, options)
    with lock, StopOnSignal() as stop:  # one driver per sweep from here; Ctrl-C / SIGTERM / SIGHUP stop it in order
        stop.before_exit.append(lock.release)
        if ray_session.starts_local_ray(options):  # the process ends from the watchdog: no Ray process outlives it
            stop.before_exit.append(lambda: ray_session.end_processes(ray_session.own_processes()))
        try:
            return _run_sweep(spec, options, tune_path, optuna_url, timings, started, stop)
        except (SweepInterrupted, Exception) as err:  # before the sweep's MLflow parent run existed: nothing to close
            if not interrupted_within(err):
                raise
            return SweepOutcome(stop.exit_code, None, tune_path, [], timings, interrupted=signal_name(stop.signum))
        except SystemExit as exit_:  # SIGTERM while ray.init had Ray's handler in place of ours
            if exit_.code != signal.SIGTERM:
                raise
            stop.signum = stop.signum or signal.SIGTERM
            return SweepOutcome(stop.exit_code, None, tune_path, [], timings, interrupted=signal_name(stop.signum))


def _run_sweep(spec, options, tune_path, optuna_url, timings, started, stop) -> SweepOutcome:
    if options.fresh:
        storage.delete_tune_dir(tune_path)
        if optuna_url:
            searchers.delete_optuna_study(optuna_url, spec.name)
    configure_tune(spec)
    if ray_session.starts_local_ray(options):
        export_plugin_roots(spec.plugins)  # its workers import the user's embeddings as this process did
    options = dataclasses.replace(options, tracking_uri=credentials_to_environment(options.tracking_uri))
    try:
        with timed(timings, "ray_start_s"):  # a new local Ray, or connecting
            # A new local Ray can only fail by crashing, and its GPU check cannot refuse gpus = 0 or "auto":
            # then the MLflow store is set up while Ray starts. Otherwise after, so bad input writes nothing.
            overlap = ray_session.starts_local_ray(options) and not (spec.gpus or 0) > 0
            early_tracker = open_tracker_in_background(options.tracking_uri, spec.name) if overlap else None
            ray_session.init_ray(options)
        stop.install()  # ray.init put Ray's SIGTERM handler (SystemExit) in place of ours
        use_driver_http_settings()  # after ray.init: a local Ray's trials keep MLflow's own HTTP retries
        ray_session.warn_if_storage_is_not_shared(options.storage)
        ray_session.note_unschedulable(spec, options)
        spec = ray_session.resolve_gpus(spec, options)
        with timed(timings, "mlflow_setup_s"):  # what store setup Ray's start did not hide, and the parent run
            tracker = early_tracker.result() if early_tracker else open_tracker(options.tracking_uri, spec.name)
            stop.parent_started()  # from here a signal is acted on where the parent run can be closed
            parent = start_parent_run(tracker, spec, options, tune_path)
            stop.on_deadline = lambda: close_without_ray(tracker, stop.signum, options.command)  # Ray hung up
            # trials whose runs are done: neither run nor touched again, however late Tune's saved state is
            finished = FinishedTrials.read(tracker) if options.resume and tracker.resumed_parent else None
        gate = budget.BudgetGate(spec.budget_hours, budget.trial_cost(options.plan, spec))
        callback = MlflowTrialLogger(options.tracking_uri, spec.name, tracker.experiment_id, parent, DescribeTrial(spec),
                                     finished, new_parent=tracker.new_parent, cost=gate.cost)  # fmt: skip
        status, trials, errors, stages = run_tune(spec, options, tune_path, tracker, callback, optuna_url, timings,
                                                  started, stop, finished, gate)  # fmt: skip
    finally:
        with timed(timings, "ray_shutdown_s"):
            ray_session.shutdown(options)
    bench_failed = stages is not None and stages.failed  # a failed bench: exit 1, the trials kept
    code = stop.exit_code or (0 if status == "FINISHED" and not errors and not bench_failed else 1)
    interrupted = signal_name(stop.signum) if stop.stopped else None
    resumable = bool(interrupted) and tune.Tuner.can_restore(tune_path)
    if gate.not_started and code == 0:
        code = 1  # trials the budget left: the sweep is not done
    return SweepOutcome(code, parent, tune_path, trials, timings, errors, stages=stages, interrupted=interrupted,
                        killed=tracker.killed, resumable=resumable, experiment_id=tracker.experiment_id,
                        budget_note=gate.summary())  # fmt: skip


def run_tune(spec, options, tune_path, tracker, callback, optuna_url, timings, started, stop, finished=None, gate=None):
    """Tune's run, then the parent run closed with what happened, whatever happened."""
    status, trials, tags, stages = "FAILED", [], {}, None
    try:
        tracker.tag(tracker.parent_run_id, **{T.TUNE_STARTED: f"{time.time():.3f}"})
        with timed(timings, "tune_s"):
            with stop.tune_running():
                fit(spec, options, tune_path, callback, optuna_url, finished, gate)
            outcomes = callback.outcomes()  # before the confirmation's experiment ends in the same callback
            confirmed = []
            if not stop.stopped:
                with stop.tune_running():
                    confirmed = run_confirmation(spec, options, tune_path, callback)  # optuna: [search] confirm_seeds
        trials = summarise(tune_path, outcomes) + confirmed
        failed = sum(1 for t in trials if t.status == "ERROR")
        unfinished = sum(1 for t in trials if t.status not in ("TERMINATED", "ERROR"))
        status = "FAILED" if failed else "KILLED" if unfinished or stop.stopped else "FINISHED"
        tags = {T.FAILED_TRIALS: failed, T.UNFINISHED_TRIALS: unfinished}
        if gate is not None and gate.not_started:
            tags[T.BUDGET_NOT_STARTED] = ", ".join(gate.not_started)[:5000]
        full = storage.full_storage(tune_path) if failed else None  # trials failed saving checkpoints: the disk is why
        if full is not None:
            tags[T.FAILURE_REASON] = storage.report_full(tune_path, full)
        if stop.stopped:
            tags[T.STOPPED] = stopped_by(stop.signum)
        else:
            with stop.stops_at_once():  # the bench can take minutes: a signal ends it, the trials are kept
                stages = after_training(spec, tracker, callback, tune_path, status, timings)  # concurrent_trials, bench
    except KeyboardInterrupt:
        status, tags = "KILLED", {T.STOPPED: "interrupted"}
        raise
    except SystemExit:  # Ray turns SIGTERM into SystemExit in the driver
        status, tags = "KILLED", {T.STOPPED: "terminated"}
        raise
    except (SweepInterrupted, Exception) as err:
        if interrupted_within(err):  # before Tune ran, or during the bench (also as Ray's SystemError around it)
            status, tags = "KILLED", {T.STOPPED: stopped_by(stop.signum)}
            trials = trials or summarise(tune_path, missing_ok=True)
        else:
            status, tags = "FAILED", {T.FAILURE_REASON: redact(f"{type(err).__name__}: {err}")[:1000]}
            full = storage.full_storage(tune_path)  # then Tune fails reading what it half wrote: the disk is the cause
            if full is None:
                raise
            tags[T.FAILURE_REASON] = storage.report_full(tune_path, full)
            trials = summarise(tune_path, missing_ok=True)
    finally:
        close_parent(tracker, callback, status, tags, timings, started, quiet=stop.stopped)
    return status, trials, callback.errors, stages


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


# --- Tune --------------------------------------------------------------------------------------------


def trial_name(trial) -> str:
    """Tune's trial_name_creator: the grid variant's name, or the Optuna trial's number and values."""
    return TrialPayload.decode(trial.config).name


def trial_dirname(trial) -> str:
    safe = "".join(c if c.isalnum() or c in "-_.=," else "_" for c in trial_name(trial))
    return f"{safe[:80]}_{trial.trial_id}"


def platform_of(spec: SweepSpec, options: RunOptions, parent_run_id: str) -> Platform:
    return Platform(
        tracking_uri=options.tracking_uri,  # without user:password (credentials_to_environment)
        experiment=spec.name,
        system_metrics=spec.system_metrics,
        system_metrics_interval_s=spec.system_metrics_interval_s,
        objectives=tuple(m for m, _ in spec.objectives),
        plugins=spec.plugins,
        search_throughput=search_throughput.settings_of(spec, parent_run_id),
    )


def fit(spec: SweepSpec, options: RunOptions, tune_path: str, callback, optuna_url, finished=None, gate=None):
    trainable = train_trial if not finished else tune.with_parameters(train_trial, finished=finished)
    trainable = tune.with_resources(trainable, {"cpu": spec.cpus, "gpu": spec.gpus or 0})
    callbacks = [callback, *searchers.optuna_callbacks(spec, optuna_url, callback, options.tracking_uri),
                 *progress.tune_callbacks(spec, options, cost=callback.cost)]  # MLflow, its Optuna links, the terminal, Tune's files  # fmt: skip
    if options.resume:
        tuner = tune_state.restore_tuner(tune_path, trainable=trainable, resume_unfinished=True, resume_errored=True)
        replace_callback(tuner, callbacks, options.verbose)
        if gate is not None:
            budget.set_gate(tuner, gate)
        return tuner.fit()
    platform = platform_of(spec, options, callback.parent_run_id)
    if spec.search == "grid":
        configs = [grid_config(i, v.name, v.values, platform) for i, v in enumerate(spec.variants)]
        search_alg = budget.GridSearch(searchers.GridSearcher(configs, gate))
        param_space, samples = {}, len(configs)
    else:
        search_alg = searchers.optuna_searcher(spec, optuna_url, platform.search_throughput, options.verbose)
        param_space, samples = search_base_config(spec.base, platform), spec.num_samples
    tune_config = tune.TuneConfig(
        search_alg=search_alg,
        scheduler=searchers.scheduler(spec),
        num_samples=samples,
        max_concurrent_trials=spec.max_concurrent_trials,
        trial_name_creator=trial_name,
        trial_dirname_creator=trial_dirname,
        # A new actor per trial is a new worker process that imports torch and builds its data again
        # (~2-7 s here, longer than a smoke trial); every trial asks for the same resources, so a
        # finished trial's actor runs the next one (Tune resets it; a failed one is replaced).
        reuse_actors=True,
    )
    run_config = tune.RunConfig(
        name=spec.name,
        storage_path=options.storage,
        failure_config=tune.FailureConfig(max_failures=spec.max_failures),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=spec.keep_checkpoints),
        callbacks=callbacks,
        verbose=options.verbose,
    )
    return tune_state.new_tuner(trainable, param_space=param_space, tune_config=tune_config, run_config=run_config).fit()


def replace_callback(tuner, callbacks: list, verbose: int) -> bool:
    """After Tuner.restore the pickled RunConfig comes back; swap in this session's callbacks
    (MLflow's, the terminal view, the guards of its storage) and verbosity.

    Ray 2.60 keeps it at tuner._local_tuner.get_run_config() (None with a Ray Client address,
    where the pickled callback - same parent run, same tracking URI - is used as is).
    """
    local = getattr(tuner, "_local_tuner", None)
    if local is None:
        return False
    run_config = local.get_run_config()
    replaced = {type(c) for c in callbacks}  # and any of tokensweep's own the first session had (-q has no view)
    others = [c for c in (run_config.callbacks or []) if type(c) not in replaced and not type(c).__module__.startswith("tokensweep.")]
    run_config.callbacks = others + [ForgetDeletedCheckpoints(), *guards(experiment_path(run_config)), *callbacks]
    run_config.verbose = verbose
    return True


def summarise(tune_path: str, outcomes: list | None = None, missing_ok: bool = False) -> list[TrialOutcome]:
    """Name, Tune status and last metrics per trial, in the spec's order: from the (trial, status) pairs the
    callback kept (MlflowTrialLogger.outcomes), else from the experiment's saved state, which reads every
    trial's results back from storage (a Ray Client sweep's callback ran on the cluster)."""
    if outcomes is None:
        try:
            outcomes = [(t, t.status) for t in tune_state.analysis(tune_path).trials]
        except Exception:
            if missing_ok:  # stopped before Tune saved any state, or its storage failed
                return []
            raise

    def order(pair):  # grid: the variant's index; optuna: the trial number
        payload = TrialPayload.decode(pair[0].config)
        return (payload.index if payload.index is not None else payload.optuna_number or 0, pair[0].trial_id)

    return [TrialOutcome(trial_name(t), status, dict(t.last_result or {})) for t, status in sorted(outcomes, key=order)]
