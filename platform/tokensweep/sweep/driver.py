"""run_sweep: a validated SweepSpec on Ray Tune, every trial an MLflow child run of the sweep's parent run.

    Tuner(with_resources(train_trial, {cpu, gpu}), search_alg = the grid's GridSearcher or Optuna)
      -> one `train_trial` per trial (tokensweep.sweep.trainable): `trials.run_trial(config, report)`
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
import sys
import time

import ray
from ray import tune

from tokensweep.plugins import export_plugin_roots
from tokensweep.spec import SweepSpec
from tokensweep.sweep import ray_session, searchers, storage
from tokensweep.sweep.options import RunOptions, SweepOutcome, TrialOutcome
from tokensweep.sweep.space import Platform, TrialPayload, grid_config, search_base_config
from tokensweep.sweep.trainable import train_trial
from tokensweep.tracking import tags as T
from tokensweep.tracking.store import is_unavailable, use_driver_http_settings
from tokensweep.tracking.tracker import SweepTracker
from tokensweep.tracking.tune_callback import MlflowTrialLogger
from tokensweep.tracking.uris import credentials_to_environment, default_optuna_storage, redact

log = logging.getLogger(__name__)

TRACKING_WAIT_ENV = "TOKENSWEEP_TRACKING_WAIT_S"
DEFAULT_TRACKING_WAIT_S = 120.0  # how long a finished sweep waits for an unreachable tracking server
SNAPSHOT_2S_TRIALS = 200  # sweeps up to this size snapshot Tune's state every 2 s (configure_tune)


def run_sweep(spec: SweepSpec, options: RunOptions, timings: dict | None = None) -> SweepOutcome:
    """`timings`: phases before this call (validate_s, import_s), recorded with the sweep's own."""
    started, timings = time.perf_counter(), dict(timings or {})
    tune_path = storage.check_storage(spec, options)
    optuna_url = optuna_storage(spec, options)
    if options.fresh:
        storage.delete_tune_dir(tune_path)
        if optuna_url:
            searchers.delete_optuna_study(optuna_url, spec.name)
    configure_tune(spec)
    if ray_session.starts_local_ray(options):
        export_plugin_roots(spec.plugins)  # its workers import the user's embeddings as this process did
    options = dataclasses.replace(options, tracking_uri=credentials_to_environment(options.tracking_uri))
    with timed(timings, "ray_start_s"):  # a new local Ray, or connecting
        # A new local Ray can only fail by crashing, and its GPU check cannot refuse gpus = 0 or "auto":
        # then the MLflow store is set up while Ray starts. Otherwise after, so bad input writes nothing.
        overlap = ray_session.starts_local_ray(options) and not (spec.gpus or 0) > 0
        early_tracker = open_tracker_in_background(options.tracking_uri, spec.name) if overlap else None
        ray_session.init_ray(options)
    use_driver_http_settings()  # after ray.init: a local Ray's trials keep MLflow's own HTTP retries
    try:
        ray_session.warn_if_storage_is_not_shared(options.storage)
        spec = ray_session.resolve_gpus(spec, options)
        with timed(timings, "mlflow_setup_s"):  # what store setup Ray's start did not hide, and the parent run
            tracker = early_tracker.result() if early_tracker else open_tracker(options.tracking_uri, spec.name)
            parent = start_parent_run(tracker, spec, options, tune_path)
        callback = MlflowTrialLogger(options.tracking_uri, spec.name, tracker.experiment_id, parent, DescribeTrial(spec),
                                     new_parent=tracker.new_parent)  # fmt: skip
        status, trials, errors = run_tune(spec, options, tune_path, tracker, callback, optuna_url, timings, started)
    finally:
        with timed(timings, "ray_shutdown_s"):
            ray.shutdown()
    code = 0 if status == "FINISHED" and not errors else 1
    return SweepOutcome(code, parent, tune_path, trials, timings, errors)


def run_tune(spec, options, tune_path, tracker, callback, optuna_url, timings, started):
    """Tune's run, then the parent run closed with what happened, whatever happened."""
    status, trials, tags = "FAILED", [], {}
    try:
        tracker.tag(tracker.parent_run_id, **{T.TUNE_STARTED: f"{time.time():.3f}"})
        with timed(timings, "tune_s"):
            fit(spec, options, tune_path, callback, optuna_url)
        trials = summarise(tune_path, callback.outcomes())
        failed = sum(1 for t in trials if t.status == "ERROR")
        unfinished = sum(1 for t in trials if t.status not in ("TERMINATED", "ERROR"))
        status = "FAILED" if failed else "KILLED" if unfinished else "FINISHED"
        tags = {T.FAILED_TRIALS: failed, T.UNFINISHED_TRIALS: unfinished}
    except KeyboardInterrupt:
        status, tags = "KILLED", {T.STOPPED: "interrupted"}
        raise
    except SystemExit:  # Ray turns SIGTERM into SystemExit in the driver
        status, tags = "KILLED", {T.STOPPED: "terminated"}
        raise
    except Exception as err:
        status, tags = "FAILED", {T.FAILURE_REASON: redact(f"{type(err).__name__}: {err}")[:1000]}
        raise
    finally:
        end_failed = close_parent(tracker, callback, status, tags, timings, started)
    return status, trials, callback.errors + end_failed


def close_parent(tracker, callback, status, tags, timings, started) -> int:
    """Deliver waiting writes, close what is still RUNNING, end the parent run; 1 if MLflow is unreachable."""
    callback.drain(float(os.environ.get(TRACKING_WAIT_ENV, DEFAULT_TRACKING_WAIT_S)))
    try:
        closed = tracker.close_running_children("KILLED")
        if callback.errors:
            tags[T.TRACKING_ERRORS] = callback.errors
        timings["sweep_s"] = time.perf_counter() - started
        tags.update({f"{T.TIME_PREFIX}{k}": f"{v:.1f}" for k, v in timings.items()})
        tracker.end_parent(status, tags)
        if closed:
            log.warning("%d trial run(s) had not ended; marked KILLED", closed)
        return 0
    except Exception as err:
        if not is_unavailable(err):
            raise
        print(
            f"tokensweep run: error: MLflow at {redact(tracker.tracking_uri)} is unreachable at the end of "
            f"the sweep; its parent run {tracker.parent_run_id} and unfinished trial runs were not closed",
            file=sys.stderr,
        )
        return 1


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
    # Tune snapshots the experiment state (which trials are done, their latest checkpoint) every
    # 10+ s by default; a driver killed in between resumes trials that had already finished. Every
    # 2 s keeps that window small while a snapshot is small. But each snapshot rewrites every trial
    # so far (~20 KB each), so a fixed period makes a long sweep's total quadratic: above
    # SNAPSHOT_2S_TRIALS, Tune's "auto" (at most ~5% of the driver's time, at least every 10 s); up to
    # it, snapshots cost at most a few ms per trial. Its warning about frequent
    # snapshots (forced by num_to_keep) is expected here.
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "2" if spec.num_trials <= SNAPSHOT_2S_TRIALS else "auto")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    if spec.search == "optuna":
        # Tune insists that every result carries the searcher's metrics, but the objectives
        # (images_per_sec) are measured after the last epoch only: OptunaSearch reads the last
        # result anyway. train_trial checks that the last report has them instead.
        os.environ["TUNE_DISABLE_STRICT_METRIC_CHECKING"] = "1"


# --- MLflow ------------------------------------------------------------------------------------------


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
    doc = {k: v for k, v in spec.resolved.items() if k not in ("resources", "failure", "tracking")}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def start_parent_run(tracker: SweepTracker, spec: SweepSpec, options: RunOptions, tune_path: str) -> str:
    tags = {
        T.SEARCH: spec.search,
        T.TRIALS: spec.num_trials,
        "gpu_shared": spec.gpu_shared,
        T.SPEC_SHA256: spec_hash(spec),
    }
    if spec.description:
        tags[T.NOTE] = spec.description
    parent = tracker.start_parent(tune_path=tune_path, command=options.command, tags=tags, spec_text=spec.text,
                                  spec_name=spec.source, resolved=spec.resolved, resume=options.resume)  # fmt: skip
    if options.resume and tracker.resumed_parent:
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


class DescribeTrial:
    """(params, tags) of a trial's child run: from the config validation built (grid) or, for an
    Optuna suggestion, the one config built for it here."""

    def __init__(self, spec: SweepSpec):
        self.configs = [v.config for v in spec.variants]

    def __call__(self, payload: TrialPayload) -> tuple[dict, dict]:
        if payload.index is not None:
            config = self.configs[payload.index]
        else:
            from trials import TrialConfig

            config = TrialConfig.from_dict(payload.values)
        params = config.params()
        if payload.optuna_number is not None:
            params["optuna_trial_number"] = payload.optuna_number
        return params, {T.CONFIG_ID: config.config_id(), "gpu_shared": config.gpu_shared}


# --- Tune --------------------------------------------------------------------------------------------


def trial_name(trial) -> str:
    """Tune's trial_name_creator: the grid variant's name, or the Optuna trial's number and values."""
    return TrialPayload.decode(trial.config).name


def trial_dirname(trial) -> str:
    safe = "".join(c if c.isalnum() or c in "-_.=," else "_" for c in trial_name(trial))
    return f"{safe[:80]}_{trial.trial_id}"


def platform_of(spec: SweepSpec, options: RunOptions) -> Platform:
    return Platform(
        tracking_uri=options.tracking_uri,  # without user:password (credentials_to_environment)
        experiment=spec.name,
        system_metrics=spec.system_metrics,
        system_metrics_interval_s=spec.system_metrics_interval_s,
        objectives=tuple(m for m, _ in spec.objectives),
        plugins=spec.plugins,
    )


def fit(spec: SweepSpec, options: RunOptions, tune_path: str, callback, optuna_url):
    trainable = tune.with_resources(train_trial, {"cpu": spec.cpus, "gpu": spec.gpus or 0})
    if options.resume:
        tuner = tune.Tuner.restore(tune_path, trainable=trainable, resume_unfinished=True, resume_errored=True)
        replace_callback(tuner, callback)
        return tuner.fit()
    platform = platform_of(spec, options)
    if spec.search == "grid":
        configs = [grid_config(i, v.name, v.values, platform) for i, v in enumerate(spec.variants)]
        search_alg, param_space, samples = searchers.GridSearcher(configs), {}, len(configs)
    else:
        search_alg = searchers.optuna_searcher(spec, optuna_url)
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
        callbacks=[callback],
        verbose=options.verbose,
    )
    return tune.Tuner(trainable, param_space=param_space, tune_config=tune_config, run_config=run_config).fit()


def replace_callback(tuner, callback) -> bool:
    """After Tuner.restore the pickled RunConfig comes back; swap in this session's MLflow callback.

    Ray 2.60 keeps it at tuner._local_tuner.get_run_config() (None with a Ray Client address,
    where the pickled callback - same parent run, same tracking URI - is used as is).
    """
    local = getattr(tuner, "_local_tuner", None)
    if local is None:
        return False
    run_config = local.get_run_config()
    others = [c for c in (run_config.callbacks or []) if not isinstance(c, MlflowTrialLogger)]
    run_config.callbacks = others + [callback]
    return True


def summarise(tune_path: str, outcomes: list | None = None) -> list[TrialOutcome]:
    """Name, Tune status and last metrics per trial, in the spec's order: from the (trial, status) pairs the
    callback kept (MlflowTrialLogger.outcomes), else from the experiment's saved state, which reads every
    trial's results back from storage (a Ray Client sweep's callback ran on the cluster)."""
    if outcomes is None:
        outcomes = [(t, t.status) for t in tune.ExperimentAnalysis(tune_path).trials]

    def order(pair):  # grid: the variant's index; optuna: the trial number
        payload = TrialPayload.decode(pair[0].config)
        return (payload.index if payload.index is not None else payload.optuna_number or 0, pair[0].trial_id)

    return [TrialOutcome(trial_name(t), status, dict(t.last_result or {})) for t, status in sorted(outcomes, key=order)]
