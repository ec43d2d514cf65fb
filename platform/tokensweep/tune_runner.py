"""Run a validated SweepSpec on Ray Tune: the driver and its MLflow callback (the trainable, what runs
in a trial's worker, is tokensweep.trainable).

Imports Ray and MLflow at import time; `tokensweep run` imports this module only after the spec
has been validated, so bad input never waits for (or starts) Ray.

Shape of a sweep:
    Tuner(with_resources(train_trial, {cpu, gpu}), param_space) on Ray (local by default)
      -> one `train_trial` per trial: `trials.run_trial(config, report)`, where report is
         `tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(dir))` every epoch and
         a retried or resumed trial continues from `tune.get_checkpoint()`
      -> `MlflowTrialLogger` (a Tune callback on the driver) writes each trial's child run.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import logging
import os
import shutil
import socket
import sys
import time

import ray
from ray import tune

from tokensweep.errors import SpecError
from tokensweep.spec import SUPERTOKEN_ONLY, SweepSpec, search_trial_name
from tokensweep.trainable import RESERVED, train_trial, trial_values
from tokensweep.tracking.mlflow_log import PendingWrites, SweepTracker, is_unavailable, use_driver_http_settings
from tokensweep.tracking.uris import redact, split_credentials

log = logging.getLogger(__name__)

# --- trial names (the driver's) --------------------------------------------------------------------


def trial_name(trial) -> str:
    """Tune's trial_name_creator: the grid variant's name, or the Optuna trial's number and values."""
    config = trial.config
    if "variant" in config:
        return config["variant"]
    search = {k: v for k, v in config.items() if k not in RESERVED}
    number = config.get("optuna_trial_number")
    prefix = f"t{number:03d}" if isinstance(number, int) else trial.trial_id
    return f"{prefix}-{search_trial_name(search)}"


def trial_dirname(trial) -> str:
    safe = "".join(c if c.isalnum() or c in "-_.=," else "_" for c in trial_name(trial))
    return f"{safe[:80]}_{trial.trial_id}"


# --- MLflow, from the driver ----------------------------------------------------------------------------


def mlflow_params(values: dict, optuna_number=None) -> dict:
    """The child run's params: the resolved model (knobs its embedding has) and the recipe."""
    from trials import TrialConfig, resolve_model

    cfg = TrialConfig.from_dict(values)
    spec = resolve_model(cfg.model, **cfg.model_overrides())
    params = {"model": cfg.model, "embedding": spec.embedding}
    if spec.embedding == "supertoken":
        for key in SUPERTOKEN_ONLY:
            value = getattr(spec, key)
            params[key] = ",".join(map(str, value)) if key == "channels" else value
    params.update(
        img_size=spec.img_size,
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        seed=cfg.seed,
        dataset=cfg.dataset,
    )
    if optuna_number is not None:
        params["optuna_trial_number"] = optuna_number
    return params


def failure_reason(trial) -> str:
    """One line: the exception that ended the trial, e.g. 'NonFiniteLoss: non-finite training loss ...'."""
    exc = None
    try:
        # the driver's own copy first: get_pickled_error() reads storage, which is synced later - at
        # on_trial_recover time it still holds no error (or the previous one)
        local = getattr(trial, "pickled_error_file", None)
        if local and os.path.isfile(local):
            import cloudpickle

            with open(local, "rb") as f:
                exc = cloudpickle.load(f)
        else:
            exc = trial.get_pickled_error()
    except Exception:
        pass
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        inner = getattr(exc, "cause", None)
        if inner is None or inner is exc:
            inner = exc.__cause__
        if inner is None:
            break
        exc = inner
    if exc is not None:
        text = str(exc).strip().splitlines()
        first = next((line for line in text if line.strip()), "")
        return f"{type(exc).__name__}: {first}"[:1000]
    try:
        local = getattr(trial, "error_file", None)
        if local and os.path.isfile(local):
            with open(local) as f:
                text = f.read()
        else:
            text = trial.get_error() or ""
    except Exception:
        text = ""
    lines = [line for line in str(text).splitlines() if line.strip()]
    return (lines[-1] if lines else "trial failed (no error recorded)")[:1000]


class MlflowTrialLogger(tune.Callback):
    """Writes each trial's child run from the driver (see tokensweep.tracking.mlflow_log).

    Every write goes through `PendingWrites`: while the tracking server is unreachable, writes wait in
    order and are replayed when it answers again (and at the end of the sweep, `drain`), so an outage
    delays records but loses none; what cannot be delivered in the end is counted, not dropped silently.
    """

    def __init__(self, tracking_uri: str, sweep_name: str, experiment_id: str, parent_run_id: str):
        self.tracking_uri = tracking_uri
        self.sweep_name = sweep_name
        self.experiment_id = experiment_id
        self.parent_run_id = parent_run_id
        self._tracker = None
        self._pending = None

    def __getstate__(self):  # pickled into the Tune experiment state: no clients, no connections
        state = self.__dict__.copy()
        state["_tracker"] = None
        state["_pending"] = None
        return state

    @property
    def tracker(self) -> SweepTracker:
        if self._tracker is None:
            tracker = SweepTracker(self.tracking_uri, self.sweep_name)
            tracker.experiment_id = self.experiment_id
            tracker.parent_run_id = self.parent_run_id
            self._tracker = tracker
        return self._tracker

    @property
    def pending(self) -> PendingWrites:
        if self._pending is None:
            self._pending = PendingWrites(f"MLflow at {redact(self.tracking_uri)}")
        return self._pending

    @property
    def errors(self) -> int:
        """MLflow writes that failed or were never delivered."""
        return self.pending.failed + self.pending.lost

    def drain(self, timeout_s: float) -> int:
        return self.pending.drain(timeout_s)

    def _safe(self, what: str, fn, *args) -> None:
        self.pending.submit(what, fn, *args)

    def on_step_end(self, iteration, trials, **info):
        self.pending.poke()  # replay waiting writes even while no trial reports

    def on_trial_start(self, iteration, trials, trial, **info):
        self._safe("start trial run", self._start, trial)

    def _start(self, trial) -> None:
        config = trial.config
        values = trial_values(config)
        params = mlflow_params(values, config.get("optuna_trial_number"))
        tags = {"gpu_shared": bool(values.get("gpu_shared", False)), "tokensweep.sweep": self.sweep_name}
        self.tracker.start_child(trial.trial_id, str(trial), params, tags)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self._safe("log result", self._result, trial, dict(result))  # a copy: it may be replayed later

    def _result(self, trial, result) -> None:
        run_id = self.tracker.child_id(trial.trial_id)
        if run_id is None:
            self._start(trial)
            run_id = self.tracker.child_id(trial.trial_id)
        step = int(result.get("epoch") or result.get("training_iteration") or 0)
        # A trial restarted from a checkpoint older than its last logged epoch reports those epochs
        # again: a worker killed after reporting an epoch but before Tune registered its checkpoint,
        # or a driver killed between two experiment snapshots (--resume). Each epoch is logged once.
        if step <= self.tracker.last_logged_step(run_id):
            log.info("trial %s: epoch %d is already in MLflow (run %s); not logged again", trial, step, run_id)
            return
        self.tracker.log_result(run_id, result, step)

    def on_trial_save(self, iteration, trials, trial, **info):
        checkpoint = trial.latest_checkpoint_result
        epoch = (checkpoint.metrics or {}).get("epoch") if checkpoint is not None else None
        if epoch is not None:
            self._safe("note checkpoint", self._note_checkpoint, trial, str(epoch))

    def _note_checkpoint(self, trial, epoch: str) -> None:
        """Tag `tokensweep.checkpoint_epoch`: the epoch a retried or resumed trial would continue after."""
        run_id = self.tracker.child_id(trial.trial_id)
        if run_id is not None:
            from mlflow.entities import RunTag

            self.tracker.client.log_batch(run_id, tags=[RunTag("tokensweep.checkpoint_epoch", epoch)])

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._safe("finish trial run", self._complete, trial, dict(trial.last_result or {}))

    def _complete(self, trial, last: dict) -> None:
        run_id = self.tracker.child_id(trial.trial_id)
        if run_id is None:
            return
        epochs = trial_values(trial.config).get("epochs")
        epoch = last.get("epoch")
        if isinstance(epoch, int) and isinstance(epochs, int) and epoch < epochs:
            # stopped by the scheduler (ASHA): a finished run without the final measurements
            from mlflow.entities import RunTag

            self.tracker.client.log_batch(
                run_id, tags=[RunTag("tokensweep.stopped_early", "true"), RunTag("tokensweep.stopped_at_epoch", str(epoch))]
            )
        self.tracker.end_child(run_id, "FINISHED")

    def on_trial_error(self, iteration, trials, trial, **info):
        self._safe("fail trial run", self._end, trial, "FAILED", failure_reason(trial))

    def on_trial_recover(self, iteration, trials, trial, **info):
        # read now: a write replayed after an outage would see the trial's later state
        retries, reason = str(trial.num_failures), failure_reason(trial)

        def note():
            run_id = self.tracker.child_id(trial.trial_id)
            if run_id:
                from mlflow.entities import RunTag

                self.tracker.client.log_batch(
                    run_id, tags=[RunTag("tokensweep.retries", retries), RunTag("tokensweep.last_failure", reason)]
                )

        self._safe("note retry", note)

    def _end(self, trial, status: str, reason: str | None) -> None:
        run_id = self.tracker.child_id(trial.trial_id)
        if run_id is not None:
            self.tracker.end_child(run_id, status, reason)


# --- the driver -------------------------------------------------------------------------------------


@dataclasses.dataclass
class RunOptions:
    tracking_uri: str
    storage: str  # absolute path or URI of Tune's storage root
    address: str | None = None  # None: $RAY_ADDRESS if set, else a new local Ray; "local": always new
    optuna_storage: str | None = None
    resume: bool = False
    fresh: bool = False
    command: str = ""
    verbose: int = 1
    num_cpus: int | None = None  # local Ray only


@dataclasses.dataclass
class SweepOutcome:
    exit_code: int
    parent_run_id: str | None
    tune_path: str
    trials: list  # (name, status, metrics) per trial
    timings: dict
    tracking_errors: int = 0


def tune_path_of(options: RunOptions, name: str) -> str:
    return options.storage.rstrip("/") + "/" + name


def _is_uri(path: str) -> bool:
    return "://" in path


def check_storage(spec: SweepSpec, options: RunOptions) -> str:
    """Does the sweep exist in storage, and does that fit --resume/--fresh? Raises SpecError; no writes."""
    path = tune_path_of(options, spec.name)
    exists = tune.Tuner.can_restore(path)
    if options.resume and options.fresh:
        raise SpecError("--resume and --fresh exclude each other")
    if options.resume and not exists:
        raise SpecError(f"--resume: no sweep named {spec.name!r} in {options.storage} (nothing to resume; run without --resume)")
    if exists and not options.resume and not options.fresh:
        raise SpecError(
            f"sweep {spec.name!r} already exists in {options.storage}: pass --resume to continue it, "
            f"--fresh to start it over, or --set sweep.name=NEW"
        )
    return path


def _delete_tune_dir(path: str) -> None:
    if _is_uri(path):
        import pyarrow.fs

        fs, fs_path = pyarrow.fs.FileSystem.from_uri(path)
        try:
            fs.delete_dir(fs_path)
        except FileNotFoundError:
            pass
    else:
        shutil.rmtree(path, ignore_errors=True)


def _probe(address: str, timeout: float = 5.0) -> None:
    """Fail in seconds, not minutes, when nothing listens at a host:port address (ray.init retries long)."""
    target = address.removeprefix("ray://")
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit() or not host:
        return  # "auto" and other forms: ray.init explains itself quickly
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as err:
        raise SpecError(f"--address {address}: nothing answers there ({err.strerror or err}); is the Ray head running?") from None


def _ray_address(options: RunOptions) -> str:
    return options.address or os.environ.get("RAY_ADDRESS") or "local"


def _starts_local_ray(options: RunOptions) -> bool:
    return _ray_address(options) in ("local", "none")


def _init_ray(options: RunOptions) -> None:
    address = _ray_address(options)
    if _starts_local_ray(options):
        # RAY_AUTH_MODE was chosen before Ray was imported: see tokensweep.commands.run.choose_ray_auth
        ray.init(address="local", num_cpus=options.num_cpus, include_dashboard=False, logging_level=logging.WARNING)
    else:
        _probe(address)
        try:
            ray.init(address=address, logging_level=logging.WARNING)
        except ConnectionError as err:
            raise SpecError(f"--address {address}: cannot connect to a Ray cluster ({err})".replace("\n", " ")) from None


def _resolve_gpus(spec: SweepSpec, options: RunOptions) -> SweepSpec:
    cluster_gpus = ray.cluster_resources().get("GPU", 0)
    if spec.gpus is None:
        return spec.with_gpus(1.0 if cluster_gpus > 0 else 0.0)
    if spec.gpus > 0 and cluster_gpus == 0:
        if _starts_local_ray(options):
            raise SpecError(f"resources.gpus = {spec.gpus:g}, but this machine has no GPU visible to Ray (use gpus = 0)")
        print(
            f"tokensweep run: note: resources.gpus = {spec.gpus:g} but the cluster has no GPU now; "
            "trials wait until an autoscaler adds GPU nodes",
            file=sys.stderr,
        )
    return spec


def build_param_space(spec: SweepSpec, platform: dict) -> dict:
    if spec.search == "grid":
        # grid over the names (what Tune's progress table shows); the values ride along, constant
        variants = {v.name: spec.trial_values(v.values) for v in spec.variants}
        return {"variant": tune.grid_search(list(variants)), "_variants": variants, "_platform": platform}
    return {"trial": spec.trial_values(spec.base), "_platform": platform}


class OptunaSpace:
    """Define-by-run space for OptunaSearch: suggests each param and records the Optuna trial number."""

    def __init__(self, params):
        self.params = tuple(params)

    def __call__(self, trial):
        for p in self.params:
            if p.kind == "choice":
                trial.suggest_categorical(p.key, list(p.choices))
            elif p.kind == "int":
                trial.suggest_int(p.key, int(p.low), int(p.high), step=int(p.step or 1), log=p.log)
            else:
                trial.suggest_float(p.key, float(p.low), float(p.high), step=p.step, log=p.log)
        return {"optuna_trial_number": trial.number}


def build_search_alg(spec: SweepSpec, storage_url: str):
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    storage = optuna.storages.RDBStorage(storage_url, engine_kwargs={"connect_args": {"timeout": 30}} if storage_url.startswith("sqlite") else None)
    metrics = [m for m, _ in spec.objectives]
    modes = [mode for _, mode in spec.objectives]
    sampler = optuna.samplers.TPESampler(seed=spec.seed)
    return OptunaSearch(
        space=OptunaSpace(spec.params),
        metric=metrics if len(metrics) > 1 else metrics[0],
        mode=modes if len(modes) > 1 else modes[0],
        sampler=sampler,
        study_name=spec.name,
        storage=storage,
    )


def delete_optuna_study(storage_url: str, name: str) -> None:
    import optuna

    try:
        optuna.delete_study(study_name=name, storage=storage_url)
    except KeyError:
        pass


def build_scheduler(spec: SweepSpec):
    if spec.scheduler != "asha":
        return None
    from ray.tune.schedulers import ASHAScheduler

    return ASHAScheduler(
        time_attr="epoch",
        metric=spec.scheduler_metric,
        mode=spec.scheduler_mode,
        max_t=spec.max_t,
        grace_period=spec.grace_period,
        reduction_factor=spec.reduction_factor,
    )


def _replace_callback(tuner, callback) -> bool:
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


SPEC_HASH_TAG = "tokensweep.spec_sha256"


def spec_hash(spec: SweepSpec) -> str:
    """Of the trials a spec defines (not of its comments or the order of its keys)."""
    import hashlib
    import json

    doc = {k: v for k, v in spec.resolved.items() if k not in ("resources", "failure", "tracking")}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def _warn_if_spec_changed(tracker: SweepTracker, parent: str, spec: SweepSpec) -> None:
    """A resumed sweep runs the trials it started with (Tune's saved state); say so if the spec moved."""
    original = tracker.client.get_run(parent).data.tags.get(SPEC_HASH_TAG)
    if original and original != spec_hash(spec):
        print(
            f"tokensweep run: note: {spec.source} (with --set) differs from the spec sweep {spec.name!r} started "
            "with; a resumed sweep continues its original trials and ignores the changes",
            file=sys.stderr,
        )


def run_sweep(spec: SweepSpec, options: RunOptions) -> SweepOutcome:
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    tune_path = check_storage(spec, options)
    optuna_url = options.optuna_storage
    if spec.search == "optuna" and optuna_url is None:
        from tokensweep.tracking.uris import default_optuna_storage

        optuna_url = default_optuna_storage(options.tracking_uri)
    if options.fresh:
        _delete_tune_dir(tune_path)
        if spec.search == "optuna":
            delete_optuna_study(optuna_url, spec.name)

    # Tune snapshots the experiment state (which trials are done, their latest checkpoint) every
    # 10+ s by default; a driver killed in between resumes trials that had already finished. Every
    # 2 s keeps that window small for a few small files per snapshot. Its warning about frequent
    # snapshots (forced by num_to_keep) is expected here.
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "2")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    options = dataclasses.replace(options, tracking_uri=_credentials_to_environment(options.tracking_uri))
    t = time.perf_counter()
    # A new local Ray can only fail by crashing, and its GPU check cannot refuse gpus = 0 or "auto":
    # then the MLflow store is set up while Ray starts. Otherwise after, so bad input writes nothing.
    overlap = _starts_local_ray(options) and not (spec.gpus or 0) > 0
    early_tracker = _open_tracker_in_background(options.tracking_uri, spec.name) if overlap else None
    _init_ray(options)
    timings["ray_start_s"] = time.perf_counter() - t  # ray.init: a new local Ray, or connecting
    use_driver_http_settings()  # after ray.init: a local Ray's trials keep MLflow's own HTTP retries
    try:
        if not _is_uri(options.storage) and len([n for n in ray.nodes() if n.get("Alive")]) > 1:
            print(
                f"tokensweep run: note: --storage {options.storage} is a local path; with trials on several "
                "machines it must be a shared filesystem (NFS) or s3://...",
                file=sys.stderr,
            )
        spec = _resolve_gpus(spec, options)
        t = time.perf_counter()
        tracker = early_tracker.result() if early_tracker else _open_tracker(options.tracking_uri, spec.name)
        parent = tracker.start_parent(
            search=spec.search,
            tune_path=tune_path,
            command=options.command,
            spec_text=spec.text,
            spec_name=spec.source,
            resolved=spec.resolved,
            description=spec.description,
            resume=options.resume,
            extra_tags={
                "tokensweep.trials": str(spec.num_trials),
                "gpu_shared": "true" if spec.gpu_shared else "false",
                SPEC_HASH_TAG: spec_hash(spec),
            },
        )
        if options.resume and tracker.resumed_parent:
            _warn_if_spec_changed(tracker, parent, spec)
        elif options.resume:
            print(
                f"tokensweep run: note: no parent run of this sweep in {redact(options.tracking_uri)}; "
                "started a new one (trials finished before are not in it)",
                file=sys.stderr,
            )
        timings["mlflow_setup_s"] = time.perf_counter() - t  # what store setup Ray's start did not hide, and the parent run
        callback = MlflowTrialLogger(options.tracking_uri, spec.name, tracker.experiment_id, parent)
        status, outcome_trials, end_failed = "FAILED", [], 0
        try:
            t = time.perf_counter()
            _fit(spec, options, tune_path, callback, optuna_url)
            timings["tune_s"] = time.perf_counter() - t
            outcome_trials = _summarise(tune_path)
            failed = sum(1 for _, st, _ in outcome_trials if st == "ERROR")
            unfinished = sum(1 for _, st, _ in outcome_trials if st not in ("TERMINATED", "ERROR"))
            status = "FAILED" if failed else "KILLED" if unfinished else "FINISHED"
            tags = {"tokensweep.failed_trials": failed, "tokensweep.unfinished_trials": unfinished}
        except KeyboardInterrupt:
            status, tags = "KILLED", {"tokensweep.stopped": "interrupted"}
            raise
        except Exception as err:
            status, tags = "FAILED", {"failure_reason": redact(f"{type(err).__name__}: {err}")[:1000]}
            raise
        finally:
            # writes kept while the tracking server was unreachable: deliver them before the runs end
            callback.drain(float(os.environ.get(TRACKING_WAIT_ENV, DEFAULT_TRACKING_WAIT_S)))
            try:
                closed = tracker.close_running_children("KILLED")
                if callback.errors:
                    tags["tokensweep.tracking_errors"] = callback.errors
                timings["sweep_s"] = time.perf_counter() - t0
                tags.update({f"tokensweep.time.{k}": f"{v:.1f}" for k, v in timings.items()})
                tracker.end_parent(status, tags)
                if closed:
                    log.warning("%d trial run(s) had not ended; marked KILLED", closed)
            except Exception as err:
                if not is_unavailable(err):
                    raise
                end_failed = 1  # say so, and keep whatever exception is on its way out
                print(
                    f"tokensweep run: error: MLflow at {redact(options.tracking_uri)} is unreachable at the end of "
                    f"the sweep; its parent run {parent} and unfinished trial runs were not closed",
                    file=sys.stderr,
                )
    finally:
        t = time.perf_counter()
        ray.shutdown()
        timings["ray_shutdown_s"] = time.perf_counter() - t
    errors = callback.errors + end_failed
    code = 0 if status == "FINISHED" and not errors else 1
    return SweepOutcome(code, parent, tune_path, outcome_trials, timings, errors)


def _open_tracker(tracking_uri: str, sweep_name: str) -> SweepTracker:
    tracker = SweepTracker(tracking_uri, sweep_name)
    tracker.ensure_experiment()  # creates the store on first use (a new sqlite file: its tables, 1-2.5 s)
    return tracker


def _open_tracker_in_background(tracking_uri: str, sweep_name: str) -> concurrent.futures.Future:
    """_open_tracker on a thread, while ray.init mostly waits for Ray's processes to come up."""
    pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="mlflow-setup")
    future = pool.submit(_open_tracker, tracking_uri, sweep_name)
    pool.shutdown(wait=False)
    return future


TRACKING_WAIT_ENV = "TOKENSWEEP_TRACKING_WAIT_S"
DEFAULT_TRACKING_WAIT_S = 120.0  # how long a finished sweep waits for an unreachable tracking server


def _credentials_to_environment(tracking_uri: str, environ=None) -> str:
    """http(s)://user:password@host -> http(s)://host, with the credentials in MLflow's own variables.

    MLflow prints "View run ... at: <tracking URI>" and Tune saves every trial's config, so a password
    inside the URI would end up on the terminal and in Tune's storage. MLFLOW_TRACKING_USERNAME/PASSWORD
    carry it instead: to this driver, and to the trials of a new local Ray (whose workers inherit this
    environment; call before ray.init). On a cluster, set them in the nodes' environment for the trials'
    system metrics. When both variables are already set, MLflow uses them rather than the URI's, so they
    stay; with one or none set MLflow would use the URI's pair, so both are set from it.
    """
    environ = os.environ if environ is None else environ
    bare, user, password = split_credentials(tracking_uri)
    if password is None:
        return tracking_uri
    if not (environ.get("MLFLOW_TRACKING_USERNAME") and environ.get("MLFLOW_TRACKING_PASSWORD")):
        environ["MLFLOW_TRACKING_USERNAME"] = user or ""
        environ["MLFLOW_TRACKING_PASSWORD"] = password
    return bare


def _fit(spec: SweepSpec, options: RunOptions, tune_path: str, callback, optuna_url):
    platform = {
        "tracking_uri": options.tracking_uri,  # without user:password (see _credentials_to_environment)
        "experiment": spec.name,
        "system_metrics": spec.system_metrics,
        "system_metrics_interval_s": spec.system_metrics_interval_s,
        "objectives": [m for m, _ in spec.objectives],
    }
    if spec.search == "optuna":
        # Tune insists that every result carries the searcher's metrics, but the objectives
        # (images_per_sec) are measured after the last epoch only: OptunaSearch reads the last
        # result anyway. train_trial checks that the last report has them instead.
        os.environ["TUNE_DISABLE_STRICT_METRIC_CHECKING"] = "1"
    resources = {"cpu": spec.cpus, "gpu": spec.gpus or 0}
    trainable = tune.with_resources(train_trial, resources)
    if options.resume:
        tuner = tune.Tuner.restore(tune_path, trainable=trainable, resume_unfinished=True, resume_errored=True)
        _replace_callback(tuner, callback)
        return tuner.fit()

    search_alg = build_search_alg(spec, optuna_url) if spec.search == "optuna" else None
    tune_config = tune.TuneConfig(
        search_alg=search_alg,
        scheduler=build_scheduler(spec),
        num_samples=spec.num_samples if spec.search == "optuna" else 1,
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
    tuner = tune.Tuner(trainable, param_space=build_param_space(spec, platform), tune_config=tune_config, run_config=run_config)
    return tuner.fit()


def _summarise(tune_path: str) -> list:
    """(name, Tune status, last metrics) per trial, read back from the experiment's saved state."""
    rows = []
    def order(trial):  # grid: creation order (ids end in _00000, _00001...); optuna: trial number
        number = trial.config.get("optuna_trial_number")
        return (number if isinstance(number, int) else -1, trial.trial_id)

    for trial in sorted(tune.ExperimentAnalysis(tune_path).trials, key=order):
        rows.append((trial_name(trial), trial.status, dict(trial.last_result or {})))
    return rows


__all__ = ["MlflowTrialLogger", "RunOptions", "SweepOutcome", "run_sweep", "train_trial", "trial_values"]
