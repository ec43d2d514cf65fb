"""The one place a Tuner is built (`build`) or restored (`restored`), for the search and for Optuna's
confirmation alike, with what goes into it: the searchers, the schedulers, the Optuna study's links to
MLflow, Tune's saved state and its storage, Ray's log filters. Its sections, in order:

Ray's log records that carry a traceback where one line says it all.

Tune logs a failed save of its experiment state (a full or unreachable storage) with the whole traceback
of pyarrow's copy, every few seconds while the fault lasts; the sweep's output should show the fault,
not bury it: the record keeps its message and gains the exception's own line instead of the traceback.

Tune's FIFO and ASHA schedulers, picking the next trial to run without a scan of every trial.

Tune asks its scheduler for a trial to run on every step of its event loop (about ten times per
trial), and FIFOScheduler.choose_trial_to_run (ASHA's too) walks the list of all trials from the
first: past every finished one, so each step costs more as the sweep goes on, and a sweep's total
grows with the square of its trials. These remember where the unfinished trials begin and look from
there: the same choice (the first PENDING trial in Tune's order, else the first PAUSED), at a cost
that does not grow.

The list only grows at its end, and a finished trial (TERMINATED, ERROR) is not run again within an
experiment: a retried trial is requeued at the end of the list before it can be chosen, and a
restored experiment is a new controller with a new list (where the position starts over).

The Optuna study as optuna-dashboard shows it, linked to MLflow both ways.

- `prepare_study`: the study exists before Tune's OptunaSearch opens it (it opens with
  load_if_exists), with its directions and its objectives' names, so optuna-dashboard says `top1` and
  `images_per_sec` rather than "0" and "1".
- `OptunaRunLinks`: a Tune callback on the driver that stores on each Optuna trial, through the
  study's storage, the MLflow run of that trial and its configuration (user attributes), once the
  MLflow callback has made the run; every MLflow child run already carries `optuna_trial_number`.

Imports Optuna inside functions: loaded only for [search] sweeps.

How Tune picks the next trial: the grid's variants in order, or Optuna; and when it stops one (ASHA).

Which checkpoint a retried or resumed trial continues from: the one of the last result the driver took in.

A trial's worker writes each epoch's checkpoint to the storage, then reports the epoch's result; the
driver takes the result in (MLflow, result.json) and only then, in a second round trip to the worker,
registers the checkpoint. A node lost between the two (or a snapshot of Tune's state taken between them,
then --resume) leaves the result taken in and its checkpoint unregistered: the trial would restart from
the epoch before and train the epoch again. `ContinueFromLastResult` (a Tune callback on the driver)
registers that checkpoint before the trial runs again (a retried trial as Tune requeues it, a resumed
one at the experiment's first step): the folder the result names, when it holds the result's epoch (the
worker's metadata says so). Never one whose result the driver did not take in: its epoch would be
missing from MLflow.

Tune's saved state: which of it a resumed sweep may load, and how a restored state meets its storage.

Tune snapshots a trial's checkpoints (the ones it keeps, `num_to_keep`) with the rest of its state every
few seconds, and deletes the oldest kept one whenever a new one registers. A driver killed between a
deletion and the next snapshot resumes with a state that still lists the deleted checkpoint; when the
trial's next checkpoint registers, Tune deletes that one again and logs `Error handling checkpoint ...
FileNotFoundError` with a traceback. `ForgetDeletedCheckpoints` (a Tune callback of a resumed sweep, on
the driver) drops such entries from the trial's list as the trial starts, before anything registers:
the folder is already gone, which is what the deletion wanted. The checkpoint a trial restores from is
never dropped.

Where Tune keeps a sweep (`<storage>/<name>`, a path or s3://...), and whether it may start, resume
or start over there. Checked before anything is written.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

from ray import tune
from ray.train._internal.session import _TrainingResult
from ray.train.constants import CHECKPOINT_DIR_NAME
from ray.tune.experiment import Trial
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
from ray.tune.search import ConcurrencyLimiter, SearchGenerator, Searcher

from tokensweep.errors import SpecError
from tokensweep.payload import Platform, SearchSettings, TrialPayload
from tokensweep.spec import SweepSpec
from tokensweep.sweep import RunOptions, TrialOutcome
from tokensweep.sweep.bench import reported_key, settings_of, study_note
from tokensweep.sweep.worker import CHECKPOINT_DIR, EPOCH, checkpoint_index, checkpoint_name, siblings_newest_first, train_trial
from tokensweep.tracking.callback import failure_reason, saved_results


ONE_LINE_LOGGERS = ("ray.tune.execution.experiment_state",)


class OneLineErrors(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            err = record.exc_info[1]
            record.msg = f"{record.getMessage().rstrip(': ')}: {type(err).__name__}: {' '.join(str(err).split())}"
            record.args = None
            record.exc_info = record.exc_text = record.stack_info = None
        return True


def one_line_ray_errors() -> None:
    for name in ONE_LINE_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, OneLineErrors) for f in logger.filters):
            logger.addFilter(OneLineErrors())


class _FromFirstUnfinished:
    """choose_trial_to_run from the first unfinished trial (see the module docstring)."""

    _trials = None  # the controller's list of trials
    _start = 0  # every trial before it has finished

    def choose_trial_to_run(self, tune_controller) -> Trial | None:
        trials = tune_controller.get_trials()
        if trials is not self._trials:
            self._trials, self._start = trials, 0
        while self._start < len(trials) and trials[self._start].is_finished():
            self._start += 1
        for status in (Trial.PENDING, Trial.PAUSED):
            for i in range(self._start, len(trials)):
                if trials[i].status == status:
                    return trials[i]
        return None

    def __getstate__(self):  # Tune pickles the scheduler with the Tuner: not the trials
        return {k: v for k, v in self.__dict__.items() if k not in ("_trials", "_start")}


class FifoScheduler(_FromFirstUnfinished, FIFOScheduler):
    pass


class AshaScheduler(_FromFirstUnfinished, ASHAScheduler):
    pass


log = logging.getLogger(__name__)

# user attributes of an Optuna trial (what optuna-dashboard lists under the trial)
RUN_ID, EXPERIMENT_ID, TRACKING_URI, TRIAL_NAME, CONFIG = (
    "mlflow_run_id", "mlflow_experiment_id", "mlflow_tracking_uri", "trial_name", "config",
)  # fmt: skip


def rdb_storage(storage_url: str):
    import optuna

    connect = {"connect_args": {"timeout": 30}} if storage_url.startswith("sqlite") else None
    return optuna.storages.RDBStorage(storage_url, engine_kwargs=connect)


def prepare_study(storage, study_name: str, objectives: list[tuple[str, str]]):
    """Create (or open) the study with one direction per objective, name its objectives, and return it."""
    import optuna

    directions = ["maximize" if mode == "max" else "minimize" for _, mode in objectives]
    study = optuna.create_study(study_name=study_name, storage=storage, directions=directions, load_if_exists=True)
    names = [metric for metric, _ in objectives]
    if study.metric_names != names:
        with warnings.catch_warnings():  # "set_metric_names is experimental": Optuna's note to us, not the user
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(names)
    return study


class OptunaRunLinks(tune.Callback):
    """Picklable (Tune saves callbacks with the experiment): the storage is opened on first use.

    `mlflow_logger` is the sweep's MlflowTrialLogger (listed before this callback, so it has made the
    run when this one sees the trial start); while the run is not made yet (an MLflow outage delays it)
    the link is tried again on each of the trial's results. Optuna accepts attributes only while its
    trial runs. `describe(payload)` gives (params, tags) of the trial's run: params are its configuration.
    """

    def __init__(self, storage_url: str, study_name: str, mlflow_logger, describe, experiment_id: str, tracking_uri: str):
        self.storage_url, self.study_name = storage_url, study_name
        self.mlflow_logger, self.describe = mlflow_logger, describe
        self.experiment_id, self.tracking_uri = experiment_id, tracking_uri
        self._storage = self._study_id = None
        self.linked: set[str] = set()

    def __getstate__(self):
        return {**self.__dict__, "_storage": None, "_study_id": None}

    def on_trial_start(self, iteration, trials, trial, **info):
        self.link(trial)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if trial.trial_id not in self.linked:
            self.link(trial)

    def link(self, trial) -> bool:
        """Store the trial's MLflow run and configuration on its Optuna trial; False if not possible yet."""
        try:
            payload = TrialPayload.decode(trial.config)
            run_id = self.mlflow_logger.tracker.child_id(trial.trial_id)
            if payload.optuna_number is None or run_id is None:
                return False
            params, _ = self.describe(payload)
            attrs = {
                RUN_ID: run_id,
                EXPERIMENT_ID: self.experiment_id,
                TRACKING_URI: self.tracking_uri,
                TRIAL_NAME: str(trial),
                CONFIG: {k: v for k, v in params.items() if k != "optuna_trial_number"},
            }
            storage, study_id = self.open()
            optuna_trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, payload.optuna_number)
            for key, value in attrs.items():
                storage.set_trial_user_attr(optuna_trial_id, key, value)
        except Exception as err:  # a link never fails the sweep; it is tried again later
            log.warning("could not link Optuna trial of %s to its MLflow run: %s", trial, err)
            return False
        self.linked.add(trial.trial_id)
        return True

    def open(self):
        if self._storage is None:
            self._storage = rdb_storage(self.storage_url)
            self._study_id = self._storage.get_study_id_from_name(self.study_name)
        return self._storage, self._study_id


THROUGHPUT_ATTR = "throughput"  # the study's user attribute: how its images_per_sec was measured


class GridSearcher(Searcher):
    """The grid's trials in order, each config carrying only its own values.

    Tune's own `grid_search` puts every variant into the spec it deep-copies for every grid point,
    which is quadratic in the grid's size; a searcher hands out one config at a time. Its saved state
    is where it got to (the configs themselves come back with the pickled Tuner on --resume); a restored
    experiment's trial list has the last word on that (`SearcherFollowsTrials`).
    """

    gate = None  # also for a grid pickled before budgets existed, restored by --resume
    _have_trials = frozenset()  # variants the restored experiment already has a trial of: never handed out again

    def __init__(self, configs: list[dict], gate=None):
        super().__init__()
        self._configs = configs
        self._next = 0
        self.gate = gate  # tokensweep.sweep.budget.BudgetGate: whether the next trial fits the budget

    def suggest(self, trial_id: str):
        while self._next < len(self._configs) and self._configs[self._next]["variant"] in self._have_trials:
            self._next += 1
        if self._next >= len(self._configs):
            return Searcher.FINISHED
        config = self._configs[self._next]
        if self.gate is not None:  # None: asked again as the running trials end, what they spent may leave room
            admitted = self.gate.admit(trial_id, config["variant"], self._left)
            if not admitted:
                return None if admitted is None else Searcher.FINISHED
        self._next += 1
        return config

    def _left(self) -> list[str]:
        return [c["variant"] for c in self._configs[self._next :] if c["variant"] not in self._have_trials]

    def resume_with(self, variants: set[str]) -> None:
        """From the first config on, hand out each one whose variant has no trial in `variants`."""
        self._have_trials, self._next = frozenset(variants), 0

    def on_trial_complete(self, trial_id: str, result=None, error: bool = False) -> None:
        if self.gate is not None:  # a grid learns nothing from results, only what they cost
            self.gate.ended(trial_id)

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "w") as f:
            json.dump({"next": self._next, "spent_h": self.gate.spent_h if self.gate is not None else 0.0}, f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path) as f:
            state = json.load(f)
        self._next = int(state["next"])
        if self.gate is not None:
            self.gate.spent_h = float(state.get("spent_h", 0.0))


def searchers_of(search_alg) -> list:
    """Tune's search algorithm and the searchers it wraps, outermost first."""
    chain = []
    while search_alg is not None:
        chain.append(search_alg)
        search_alg = getattr(search_alg, "searcher", None)
    return chain


class SearcherFollowsTrials(tune.Callback):
    """At a restored experiment's first step, before Tune asks its searcher for a trial, the searcher's restored
    state is made to agree with the restored trial list.

    The two are separate files of Tune's state, and Tune writes the next snapshot into its staging folder while
    the upload of the last one may still be copying it (Ray 2.60's sync_up_experiment_state writes the snapshot,
    then waits for the previous upload): the storage can hold a trial list from one snapshot and a searcher from
    the next.
    A grid's saved position then skips the variant whose trial the list lacks (the sweep ends one trial short,
    with exit 0), or hands out again one the list has (a duplicate); the concurrency limit counts a trial that
    does not exist, which never ends and holds its slot. So: the grid hands out every variant without a trial,
    and the limit counts only unfinished trials of the list.
    """

    def __init__(self, search_alg):
        self.search_alg = search_alg

    def __getstate__(self):  # pickled with the run config: the searcher is pickled with the Tuner already
        return {"search_alg": None}

    def on_step_begin(self, iteration, trials, **info):
        if self.search_alg is None:
            return
        unfinished = {t.trial_id for t in trials if not t.is_finished()}
        for searcher in searchers_of(self.search_alg):
            if isinstance(searcher, GridSearcher):
                searcher.resume_with({t.config.get("variant") for t in trials})
            elif isinstance(searcher, ConcurrencyLimiter) and not searcher.live_trials <= unfinished:
                gone = searcher.live_trials - unfinished
                log.debug("the concurrency limit counted %d trial(s) the restored list lacks: %s", len(gone), sorted(gone))
                searcher.live_trials -= gone
                searcher.num_unfinished_live_trials = max(0, searcher.num_unfinished_live_trials - len(gone))
        self.search_alg = None


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


def optuna_searcher(spec: SweepSpec, storage_url: str, throughput: SearchSettings | None = None, verbose: int = 0):
    """OptunaSearch over the spec's space, scoring each objective on the key the trials report it under
    (`throughput`: the search's settings, tokensweep.sweep.bench); the study says how its
    images_per_sec was measured (user attribute `throughput`)."""
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    if verbose <= 0:  # its INFO lines ("A new study created in RDB ...") are not the sweep's news
        optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = rdb_storage(storage_url)
    study = prepare_study(storage, spec.name, spec.objectives)  # its objectives named for optuna-dashboard
    note = study_note(throughput)
    if note is not None:
        study.set_user_attr(THROUGHPUT_ATTR, note)
    metrics = [reported_key(m, throughput) for m, _ in spec.objectives]
    modes = [mode for _, mode in spec.objectives]
    return OptunaSearch(
        space=OptunaSpace(spec.params),
        metric=metrics if len(metrics) > 1 else metrics[0],
        mode=modes if len(modes) > 1 else modes[0],
        sampler=optuna.samplers.TPESampler(seed=spec.seed),
        study_name=spec.name,
        storage=storage,
    )


def optuna_callbacks(spec: SweepSpec, storage_url: str | None, mlflow_logger, tracking_uri: str) -> list:
    """[search] sweeps: the callback that links each Optuna trial to its MLflow run; none for a grid."""
    if spec.search != "optuna" or not storage_url:
        return []
    return [OptunaRunLinks(storage_url, spec.name, mlflow_logger, mlflow_logger.describe, mlflow_logger.experiment_id, tracking_uri)]


def delete_optuna_study(storage_url: str, name: str) -> None:
    import optuna

    try:
        optuna.delete_study(study_name=name, storage=storage_url)
    except KeyError:
        pass


def scheduler(spec: SweepSpec):
    """Tune's scheduler for the spec: ASHA, or FIFO (both choosing the next trial at a constant cost)."""
    return asha_scheduler(spec) or FifoScheduler()


def asha_scheduler(spec: SweepSpec):
    if spec.scheduler != "asha":
        return None
    return AshaScheduler(
        time_attr="epoch",
        metric=spec.scheduler_metric,
        mode=spec.scheduler_mode,
        max_t=spec.max_t,
        grace_period=spec.grace_period,
        reduction_factor=spec.reduction_factor,
    )


def unregistered_checkpoint(trial) -> _TrainingResult | None:
    """The checkpoint of the trial's last result, where Tune has not registered it and its folder holds
    that epoch (see the module docstring); else None."""
    last = trial.last_result or {}
    epoch, name = last.get(EPOCH), last.get(CHECKPOINT_DIR_NAME)
    registered = trial.latest_checkpoint_result
    if not isinstance(epoch, int) or not isinstance(name, str) or not CHECKPOINT_DIR.match(name):
        return None
    if registered is not None and (registered.metrics or {}).get(EPOCH, 0) >= epoch:
        return None
    checkpoint = tune.Checkpoint(f"{trial.storage.trial_fs_path}/{name}", trial.storage.storage_filesystem)
    try:
        held = checkpoint.get_metadata().get(EPOCH)
    except (OSError, ValueError, AttributeError):  # unreachable, or no metadata we wrote: leave it to Tune
        return None
    return _TrainingResult(checkpoint=checkpoint, metrics=dict(last)) if held == epoch else None


class ContinueFromLastResult(tune.Callback):
    """Registers a trial's unregistered last checkpoint (see the module docstring) before Tune gives the trial
    an actor again: the actor takes the trial's checkpoint count with it, and counts on from there."""

    _first_step = True

    def on_step_begin(self, iteration, trials, **info):
        if self._first_step:  # the trials of a restored experiment, before any of them runs
            self._first_step = False
            for trial in trials:
                if not trial.is_finished():
                    register_last_checkpoint(trial)

    def on_trial_recover(self, iteration, trials, trial, **info):
        register_last_checkpoint(trial)  # requeued: its actor comes in a later step


def register_last_checkpoint(trial) -> None:
    found = unregistered_checkpoint(trial)
    if found is None:
        return
    forget_deleted(trial)  # registering deletes the oldest beyond num_to_keep: not one that is gone already
    trial.on_checkpoint(found)  # as Tune registers one
    index = checkpoint_index(found.checkpoint)
    trial.storage.current_checkpoint_index = max(trial.storage.current_checkpoint_index, index)  # the next goes after it
    log.debug("trial %s: continues from epoch %d's checkpoint, which Tune had not registered", trial, found.metrics[EPOCH])


def exists(checkpoint) -> bool:
    import pyarrow.fs

    try:
        return checkpoint.filesystem.get_file_info(checkpoint.path).type != pyarrow.fs.FileType.NotFound
    except OSError:
        return True  # cannot tell: leave it to Tune


class ForgetDeletedCheckpoints(tune.Callback):
    def on_trial_start(self, iteration, trials, trial, **info):
        forget_deleted(trial)
        latest = trial.latest_checkpoint_result
        if latest is not None and not exists(latest.checkpoint):
            restore_from_newest_reported(trial, trial.run_metadata.checkpoint_manager, latest)


def forget_deleted(trial) -> None:
    manager = getattr(getattr(trial, "run_metadata", None), "checkpoint_manager", None)
    results = getattr(manager, "_checkpoint_results", None)  # Ray 2.60's bookkeeping; absent elsewhere: no-op
    if not results:
        return
    latest = manager.latest_checkpoint_result
    kept = [r for r in results if r is latest or exists(r.checkpoint)]
    if len(kept) != len(results):
        log.debug("trial %s: %d deleted checkpoint(s) dropped from Tune's restored list", trial, len(results) - len(kept))
        manager._checkpoint_results = kept


def restore_from_newest_reported(trial, manager, gone) -> None:
    """The checkpoint the trial would restore from was deleted (Tune registered newer ones after the saved state
    named it): Tune's restore would fail the trial on every try. Restore it from the newest checkpoint in its
    folder that a report the driver processed names (the trial's saved results: so no epoch goes unlogged),
    with that report as Tune's record of it."""
    # the last report naming each folder: after an earlier restore a folder's name may have been used again
    reported = {r[CHECKPOINT_DIR_NAME]: r for r in saved_results(trial) if r.get(CHECKPOINT_DIR_NAME)}
    for checkpoint in siblings_newest_first(gone.checkpoint):
        name = checkpoint_name(checkpoint)
        if name in reported:
            found = _TrainingResult(checkpoint=checkpoint, metrics=reported[name])
            manager._checkpoint_results = [r for r in manager._checkpoint_results if r is not gone] + [found]
            manager._latest_checkpoint_result = found
            trial.storage.current_checkpoint_index = checkpoint_index(checkpoint)  # the saved state stays coherent
            print(
                f"tokensweep run: note: trial {trial}: {checkpoint_name(gone.checkpoint)}, the checkpoint Tune's saved "
                f"state names, is gone (Tune deleted it after newer ones registered); continuing from {name} "
                f"(epoch {reported[name].get(EPOCH, '?')})",
                file=sys.stderr, flush=True,
            )  # fmt: skip
            return


# --- which saved state a resumed sweep may load ----------------------------------------------------------------
#
# Tuner.restore unpickles files of the experiment's folder in the Tune storage: tuner.pkl, the newest
# experiment_state-*.json (each trial in it is cloudpickled), and the searcher's, search generator's and
# callbacks' states (every *.json and *.pkl at the folder's top, which Tune copies to its local staging folder
# first). Unpickling runs whatever code a pickle names, and the storage is written by every node of a cluster
# and whoever else may write its share or bucket: the driver records the SHA-256 of the versions of these files
# it writes (StateRecord), on its own machine, before Tune uploads them, and a resumed sweep loads none that is
# not recorded (docs/reliability.md, "Trust").
#
# Tune's upload writes each file in place: a storage that fills up mid-upload keeps the start of a version the
# driver wrote, which no digest matches. The record keeps the newest versions whole (KEEP_COPIES), so such a
# file is completed from the driver's own copy before Tune reads it, rather than refused or half-read.

STATE_SUFFIXES = (".json", ".pkl")
TUNER_FILE = "tuner.pkl"  # what the Tuner writes to the storage itself (not through the staging folder)
KEEP_VERSIONS = 256  # recent digests kept per file: Tune's upload of a snapshot may lag its next saves (~8 min of 2 s snapshots)
STORAGE_LOOK_S = 20.0  # how often the driver reads which of its versions the storage holds (StateRecord)
KEEP_COPIES = 2  # versions kept whole per file: an upload in flight may be of the newest or the one before


def experiment_path(run_config) -> str:
    """The experiment's folder in the storage (`<storage>/<name>`): the record's key."""
    return str(run_config.storage_path).rstrip("/") + "/" + run_config.name


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# The sweep's id, a file of its experiment folder (plain text, never unpickled; not one of Tune's STATE_SUFFIXES):
# it moves with the folder, so a sweep moved to another folder finds its MLflow parent run (tag
# tokensweep.sweep_id) and its StateRecord again. A sweep started before ids were written has none.
SWEEP_ID_FILE = "tokensweep-sweep-id"


def read_sweep_id(experiment: str) -> str | None:
    import pyarrow.fs

    fs, folder = pyarrow.fs.FileSystem.from_uri(experiment)
    try:
        with fs.open_input_stream(f"{folder}/{SWEEP_ID_FILE}") as f:
            text = f.readall().decode("ascii", "replace").strip()
    except OSError:  # none there: a sweep started before ids were written
        return None
    return text if text.isalnum() and len(text) <= 64 else None


def write_sweep_id(experiment: str) -> str:
    """A new sweep's id, written to its experiment folder (created if need be)."""
    import uuid

    import pyarrow.fs

    sweep_id = uuid.uuid4().hex
    fs, folder = pyarrow.fs.FileSystem.from_uri(experiment)
    fs.create_dir(folder, recursive=True)
    with fs.open_output_stream(f"{folder}/{SWEEP_ID_FILE}") as f:
        f.write(sweep_id.encode())
    return sweep_id


class StateRecord:
    """The digests of an experiment's state files that this user's driver wrote, in a file only the user may
    write: `$XDG_STATE_HOME/tokensweep/tune-state/` (default ~/.local/state), one per sweep (its id; per experiment
    folder for a sweep without one).

    Per file: its recent versions, and the one the storage held when the driver last looked (`stored`, always
    one of its own): while uploads fail (a full disk, an outage), the storage keeps an older version than the
    recent ones, and that is the version a --resume will find."""

    def __init__(self, experiment: str):
        self.experiment = experiment.rstrip("/")
        key = read_sweep_id(self.experiment) or self.experiment  # the sweep's, wherever its folder is now
        base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
        self.path = base / "tokensweep" / "tune-state" / f"{sha256(key.encode())[:32]}.json"
        self.copies = self.path.with_suffix("")  # <digest> -> the bytes of that version, for the newest ones

    def read(self) -> tuple[dict[str, list[str]], dict[str, str]]:
        """(name -> recent digests, name -> the stored one)."""
        try:
            record = json.loads(self.path.read_text())
            return dict(record["files"]), dict(record["stored"])
        except (OSError, ValueError, KeyError, TypeError):
            return {}, {}

    def known(self) -> dict[str, set[str]]:
        files, stored = self.read()
        return {name: {*files.get(name, ()), *([stored[name]] if name in stored else [])} for name in {*files, *stored}}

    def add(self, contents: dict[str, bytes], in_storage: dict[str, str] | None = None) -> None:
        """Record new versions (name -> bytes), and which of its own the storage holds (`in_storage`: what it
        holds now). Written atomically: a driver killed meanwhile leaves the previous record. A record that
        cannot be written (a read-only home) is a warning: the sweep goes on, and --resume would refuse its state."""
        try:
            files = self._write({name: sha256(data) for name, data in contents.items()}, in_storage)
            self._keep_copies(contents, files)
        except OSError as err:
            log.warning("could not record the digests of Tune's state in %s (%s): --resume may refuse it", self.path, err)

    def _write(self, digests: dict[str, str], in_storage: dict[str, str] | None) -> dict[str, list[str]]:
        files, stored = self.read()
        for name, digest in (in_storage or {}).items():
            if digest in files.get(name, ()):
                stored[name] = digest
        for name, digest in digests.items():
            versions = [d for d in files.get(name, []) if d != digest]
            files[name] = (versions + [digest])[-KEEP_VERSIONS:]
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        tmp.write_text(json.dumps({"experiment": self.experiment, "files": files, "stored": stored}))
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.path)
        return files

    def _keep_copies(self, contents: dict[str, bytes], files: dict[str, list[str]]) -> None:
        """The bytes of each file's KEEP_COPIES newest versions; older copies are deleted."""
        self.copies.mkdir(mode=0o700, exist_ok=True)
        for data in contents.values():
            copy = self.copies / sha256(data)
            if not copy.exists():
                tmp = copy.with_name(f".{copy.name}.{os.getpid()}")
                tmp.write_bytes(data)
                os.replace(tmp, copy)
        newest = {digest for versions in files.values() for digest in versions[-KEEP_COPIES:]}
        for copy in self.copies.iterdir():
            if copy.name not in newest and not copy.name.startswith("."):
                copy.unlink(missing_ok=True)

    def completion(self, name: str, data: bytes) -> bytes | None:
        """The version of `name` this driver wrote that `data` is the cut-off start of (newest first), or None."""
        files, _ = self.read()
        for digest in reversed(files.get(name, [])[-KEEP_COPIES:]):
            try:
                whole = (self.copies / digest).read_bytes()
            except OSError:
                continue
            if len(data) < len(whole) and whole.startswith(data) and sha256(whole) == digest:
                return whole
        return None

    def forget(self) -> None:
        self.path.unlink(missing_ok=True)
        shutil.rmtree(self.copies, ignore_errors=True)


def storage_files(experiment: str) -> dict[str, bytes]:
    """name -> bytes of every state file at the top of the experiment's folder in the storage (path or URI)."""
    import pyarrow.fs

    fs, folder = pyarrow.fs.FileSystem.from_uri(experiment)
    infos = fs.get_file_info(pyarrow.fs.FileSelector(folder, allow_not_found=True))
    contents = {}
    for info in infos:
        if info.type == pyarrow.fs.FileType.File and info.base_name.endswith(STATE_SUFFIXES):
            with fs.open_input_stream(info.path) as f:
                contents[info.base_name] = f.readall()
    return contents


def storage_state(experiment: str) -> dict[str, str]:
    """name -> digest of every state file at the top of the experiment's folder in the storage."""
    return {name: sha256(data) for name, data in storage_files(experiment).items()}


def check_recorded(experiment: str) -> dict[str, bytes]:
    """Before Ray reads an experiment's saved state: a SpecError naming the first file that this user's
    driver did not write (one that the storage's other writers added or changed). Returns the files whose
    upload was cut short (name -> the whole version this driver wrote): complete_uploads puts them back."""
    recorded = StateRecord(experiment)
    known = recorded.known()
    cut_short = {}
    for name, data in sorted(storage_files(experiment).items()):
        if sha256(data) in known.get(name, ()):
            continue
        whole = recorded.completion(name, data)
        if whole is not None:
            cut_short[name] = whole
        elif not _unparsable_json(name, data):
            raise SpecError(
                f"Tune's state file {name} in {experiment} is not one this sweep's driver wrote (its SHA-256 is not in "
                f"{recorded.path}): it is not loaded, since unpickling it could run any code; if the storage was "
                "tampered with, start over with --fresh; if the sweep ran on another machine or as another user, "
                "resume it there"
            )
    return cut_short


def _unparsable_json(name: str, data: bytes) -> bool:
    """A .json state file that is not JSON (cut short, with no copy of its version left) cannot run code: Tune
    parses the JSON before it unpickles anything in it. Tune reads it as it would have; it is not refused."""
    if not name.endswith(".json"):
        return False
    try:
        json.loads(data)
    except ValueError:
        return True
    return False


def complete_uploads(experiment: str, cut_short: dict[str, bytes]) -> None:
    """Writes the whole versions of state files whose upload a full storage cut short, and says so."""
    import pyarrow.fs

    fs, folder = pyarrow.fs.FileSystem.from_uri(experiment)
    for name, whole in sorted(cut_short.items()):
        with fs.open_output_stream(f"{folder}/{name}") as f:
            f.write(whole)
        print(
            f"tokensweep run: note: Tune's state file {name} in {experiment} was cut short (an upload the storage "
            "had no room for); completed from this driver's own copy of it",
            file=sys.stderr, flush=True,
        )  # fmt: skip


def new_tuner(*args, run_config, **kwargs) -> tune.Tuner:
    """tune.Tuner(...) with its state recorded: the tuner.pkl it has just written, and (state_guards) every
    experiment snapshot it will save."""
    experiment = experiment_path(run_config)
    record = StateRecord(experiment)
    record.forget()  # a new experiment: nothing earlier in its folder is loaded again
    run_config.callbacks = [*(run_config.callbacks or []), *state_guards(experiment)]
    tuner = tune.Tuner(*args, run_config=run_config, **kwargs)
    record.add({k: v for k, v in storage_files(experiment).items() if k == TUNER_FILE})
    return tuner


def restore_tuner(experiment: str, **kwargs) -> tune.Tuner:
    """tune.Tuner.restore, once every state file it would load is one this driver recorded (or completed)."""
    complete_uploads(experiment, check_recorded(experiment))
    return tune.Tuner.restore(experiment, **kwargs)


def analysis(experiment: str) -> tune.ExperimentAnalysis:
    """The experiment's trials as its saved state has them, once that state is one this driver recorded."""
    complete_uploads(experiment, check_recorded(experiment))
    return tune.ExperimentAnalysis(experiment)


class RecordSnapshots(tune.Callback):
    """Records the digests of each experiment snapshot as Tune saves it, before Tune uploads it to the storage.

    Tune saves a snapshot to its local staging folder (the experiment's state, then the searcher's, then it asks
    every callback for its state) and then uploads that folder. `get_state` is that ask: the snapshot is complete
    and has not reached the storage. It returns None, as every tokensweep callback does, so no callback-state file
    follows unrecorded. The folder is known from the trials (each step's); an experiment that ends without a
    step (a resumed one with every trial done) is recorded at its end, from the local copy of what it uploaded.
    """

    def __init__(self, experiment: str):
        self.experiment = experiment
        self.record = StateRecord(experiment)
        self._trials = None  # Tune's own list of the experiment's trials, which grows as trials are added
        self._looked = float("-inf")  # when the storage was last read (StateRecord's `stored`)

    def __getstate__(self):
        return {**self.__dict__, "_trials": None, "_looked": float("-inf")}

    def on_step_begin(self, iteration, trials, **info):
        self._trials = trials

    def get_state(self):
        self._record(self._trials)
        return None

    def on_experiment_end(self, trials, **info):
        self._record(trials)

    def _in_storage(self) -> dict[str, str] | None:
        """Every STORAGE_LOOK_S, the digests of what the storage holds (only ever matched against our own)."""
        if time.monotonic() - self._looked < STORAGE_LOOK_S:
            return None
        self._looked = time.monotonic()
        try:
            return storage_state(self.experiment)
        except OSError:  # unreachable now: the versions it holds were seen before, or are recent
            return None

    def _record(self, trials) -> None:
        if not trials:
            return
        staging = Path(trials[0].storage.experiment_driver_staging_path)
        try:
            files = [p for p in staging.iterdir() if p.is_file() and p.name.endswith(STATE_SUFFIXES)]
            contents = {p.name: p.read_bytes() for p in files}
        except OSError as err:  # the next snapshot tries again; until then --resume would refuse this one
            log.warning("could not read Tune's state in %s (%s): --resume may refuse it", staging, err)
            return
        self.record.add(contents, self._in_storage())


class ErrorsAsText(tune.Callback):
    """At the experiment's end, before Tuner.fit builds its ResultGrid, which would unpickle from the storage the
    error of every trial that did not finish: the trials forget their pickled error, so it reads error.txt."""

    def on_experiment_end(self, trials, **info):
        for trial in trials:
            trial.run_metadata.pickled_error_filename = None


def state_guards(experiment: str) -> list[tune.Callback]:
    """The callbacks of every Tuner of a sweep, new or restored: nothing in the storage runs as code."""
    return [RecordSnapshots(experiment), ErrorsAsText()]


def is_uri(path: str) -> bool:
    return "://" in path


def check_storage(spec: SweepSpec, options: RunOptions) -> str:
    """The sweep's Tune path, if it exists as --resume/--fresh expect (and, to resume, holds only state files
    this driver wrote: check_recorded); else a SpecError. No writes."""
    path = options.tune_path(spec.name)
    exists = tune.Tuner.can_restore(path)
    if options.resume and not exists:
        raise SpecError(f"--resume: no sweep named {spec.name!r} in {options.storage} (nothing to resume; run without --resume)")
    if exists and not options.resume and not options.fresh:
        raise SpecError(
            f"sweep {spec.name!r} already exists in {options.storage}: pass --resume to continue it, "
            f"--fresh to start it over, or --set sweep.name=NEW"
        )
    if options.resume:
        check_recorded(path)
    return path


def delete_tune_dir(path: str) -> None:
    if is_uri(path):
        import pyarrow.fs

        fs, fs_path = pyarrow.fs.FileSystem.from_uri(path)
        try:
            fs.delete_dir(fs_path)
        except FileNotFoundError:
            pass
    else:
        shutil.rmtree(path, ignore_errors=True)


PROBE_BYTES = 1 << 20  # about what a small trial's checkpoint needs


def full_storage(path: str) -> str | None:
    """Why a local Tune storage cannot take another checkpoint (its disk or quota is full), or None.
    Found by writing a probe file, which is deleted again (s3:// is never full)."""
    if is_uri(path):
        return None
    directory = path if os.path.isdir(path) else os.path.dirname(path)
    try:
        with tempfile.TemporaryFile(dir=directory) as f:
            f.write(b"\0" * PROBE_BYTES)
            f.flush()
            os.fsync(f.fileno())
    except OSError as err:
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            return os.strerror(err.errno)
    return None


def report_full(tune_path: str, why: str) -> str:
    """Say in one line that the sweep stopped because its storage is full; the parent run's failure reason."""
    print(
        f"tokensweep run: error: Tune's storage {tune_path} is full ({why}): trials cannot save their checkpoints "
        "there; free space, then --resume continues the sweep",
        file=sys.stderr,
        flush=True,
    )
    return f"OSError: Tune's storage {tune_path} is full ({why})"


# --- The Tuner of the search and of Optuna's confirmation ---------------------------------------------


def trainable_of(spec: SweepSpec, finished=None):
    """train_trial with the resources of one trial (and, on --resume, the trials not to run again)."""
    trainable = train_trial if not finished else tune.with_parameters(train_trial, finished=finished)
    return tune.with_resources(trainable, {"cpu": spec.cpus, "gpu": spec.gpus or 0})


def build(spec: SweepSpec, trainable, *, name: str, storage_path: str, search_alg, samples: int, callbacks: list,
          verbose: int, scheduler=None, param_space: dict | None = None) -> tune.Tuner:  # fmt: skip
    """A new Tuner of the sweep's trials: its failure and checkpoint policy, its names, one actor per trial slot."""
    tune_config = tune.TuneConfig(
        search_alg=search_alg,
        scheduler=scheduler,
        num_samples=samples,
        # a SearchGenerator carries its own limit (tokensweep.sweep.budget.searching): Tune ignores this one for it
        max_concurrent_trials=None if isinstance(search_alg, SearchGenerator) else spec.max_concurrent_trials,
        trial_name_creator=trial_name,
        trial_dirname_creator=trial_dirname,
        # A new actor per trial is a new worker process that imports torch and builds its data again
        # (~2-7 s here, longer than a smoke trial); every trial asks for the same resources, so a
        # finished trial's actor runs the next one (Tune resets it; a failed one is replaced).
        reuse_actors=True,
    )
    run_config = tune.RunConfig(
        name=name,
        storage_path=storage_path,
        failure_config=tune.FailureConfig(max_failures=spec.max_failures),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=spec.keep_checkpoints),
        callbacks=[ContinueFromLastResult(), *callbacks],
        verbose=verbose,
    )
    return new_tuner(trainable, param_space=param_space or {}, tune_config=tune_config, run_config=run_config)


def restored(experiment: str, trainable, callbacks: list, verbose: int) -> tune.Tuner:
    """The experiment's Tuner restored, its unfinished and errored trials resumed, this session's callbacks in."""
    job = restore_tuner(experiment, trainable=trainable, resume_unfinished=True, resume_errored=True)
    replace_callback(job, callbacks, verbose)
    return job


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
        search_throughput=settings_of(spec, parent_run_id),
    )


def search_alg_of(job):
    """A restored Tuner's search algorithm, as Tune will run it (Ray 2.60 keeps it in its local tuner's config)."""
    return getattr(getattr(getattr(job, "_local_tuner", None), "_tune_config", None), "search_alg", None)


def replace_callback(job, callbacks: list, verbose: int) -> bool:
    """After Tuner.restore the pickled RunConfig comes back; swap in this session's callbacks
    (MLflow's, the terminal view, the guards of its storage, the restored searcher's agreement with the
    restored trials) and verbosity.

    Ray 2.60 keeps it at tuner._local_tuner.get_run_config() (None with a Ray Client address,
    where the pickled callback - same parent run, same tracking URI - is used as is).
    """
    local = getattr(job, "_local_tuner", None)
    if local is None:
        return False
    run_config = local.get_run_config()
    follow = SearcherFollowsTrials(search_alg_of(job))
    replaced = {type(c) for c in callbacks}  # and any of tokensweep's own the first session had (-q has no view)
    others = [c for c in (run_config.callbacks or []) if type(c) not in replaced and not type(c).__module__.startswith("tokensweep.")]
    run_config.callbacks = others + [ForgetDeletedCheckpoints(), ContinueFromLastResult(), follow, *state_guards(experiment_path(run_config)), *callbacks]
    run_config.verbose = verbose
    return True


def summarise(tune_path: str, outcomes: list | None = None, missing_ok: bool = False) -> list[TrialOutcome]:
    """Name, Tune status and last metrics per trial, in the spec's order: from the (trial, status) pairs the
    callback kept (MlflowTrialLogger.outcomes), else from the experiment's saved state, which reads every
    trial's results back from storage (a Ray Client sweep's callback ran on the cluster)."""
    if outcomes is None:
        try:
            outcomes = [(t, t.status) for t in analysis(tune_path).trials]
        except Exception:
            if missing_ok:  # stopped before Tune saved any state, or its storage failed
                return []
            raise

    def order(pair):  # grid: the variant's index; optuna: the trial number
        payload = TrialPayload.decode(pair[0].config)
        return (payload.index if payload.index is not None else payload.optuna_number or 0, pair[0].trial_id)

    return [
        TrialOutcome(trial_name(t), status, dict(t.last_result or {}), failure_reason(t) if status == Trial.ERROR else "")
        for t, status in sorted(outcomes, key=order)
    ]
