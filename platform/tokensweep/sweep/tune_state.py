"""Tune's saved state: which of it a resumed sweep may load, and how a restored state meets its storage.

Tune snapshots a trial's checkpoints (the ones it keeps, `num_to_keep`) with the rest of its state every
few seconds, and deletes the oldest kept one whenever a new one registers. A driver killed between a
deletion and the next snapshot resumes with a state that still lists the deleted checkpoint; when the
trial's next checkpoint registers, Tune deletes that one again and logs `Error handling checkpoint ...
FileNotFoundError` with a traceback. `ForgetDeletedCheckpoints` (a Tune callback of a resumed sweep, on
the driver) drops such entries from the trial's list as the trial starts, before anything registers:
the folder is already gone, which is what the deletion wanted. The checkpoint a trial restores from is
never dropped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path

from ray import tune

from tokensweep.errors import SpecError

log = logging.getLogger(__name__)


def exists(checkpoint) -> bool:
    import pyarrow.fs

    try:
        return checkpoint.filesystem.get_file_info(checkpoint.path).type != pyarrow.fs.FileType.NotFound
    except OSError:
        return True  # cannot tell: leave it to Tune


class ForgetDeletedCheckpoints(tune.Callback):
    def on_trial_start(self, iteration, trials, trial, **info):
        manager = getattr(getattr(trial, "run_metadata", None), "checkpoint_manager", None)
        results = getattr(manager, "_checkpoint_results", None)  # Ray 2.60's bookkeeping; absent elsewhere: no-op
        if not results:
            return
        latest = manager.latest_checkpoint_result
        kept = [r for r in results if r is latest or exists(r.checkpoint)]
        if len(kept) != len(results):
            log.debug("trial %s: %d deleted checkpoint(s) dropped from Tune's restored list", trial, len(results) - len(kept))
            manager._checkpoint_results = kept


# --- which saved state a resumed sweep may load ----------------------------------------------------------------
#
# Tuner.restore unpickles files of the experiment's folder in the Tune storage: tuner.pkl, the newest
# experiment_state-*.json (each trial in it is cloudpickled), and the searcher's, search generator's and
# callbacks' states (every *.json and *.pkl at the folder's top, which Tune copies to its local staging folder
# first). Unpickling runs whatever code a pickle names, and the storage is written by every node of a cluster
# and whoever else may write its share or bucket: the driver records the SHA-256 of the versions of these files
# it writes (StateRecord), on its own machine, before Tune uploads them, and a resumed sweep loads none that is
# not recorded (docs/reliability.md, "Trust").

STATE_SUFFIXES = (".json", ".pkl")
TUNER_FILE = "tuner.pkl"  # what the Tuner writes to the storage itself (not through the staging folder)
KEEP_VERSIONS = 256  # recent digests kept per file: Tune's upload of a snapshot may lag its next saves (~8 min of 2 s snapshots)
STORAGE_LOOK_S = 20.0  # how often the driver reads which of its versions the storage holds (StateRecord)


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
    write: `$XDG_STATE_HOME/tokensweep/tune-state/` (default ~/.local/state), one per experiment folder.

    Per file: its recent versions, and the one the storage held when the driver last looked (`stored`, always
    one of its own): while uploads fail (a full disk, an outage), the storage keeps an older version than the
    recent ones, and that is the version a --resume will find."""

    def __init__(self, experiment: str):
        self.experiment = experiment.rstrip("/")
        key = read_sweep_id(self.experiment) or self.experiment  # the sweep's, wherever its folder is now
        base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
        self.path = base / "tokensweep" / "tune-state" / f"{sha256(key.encode())[:32]}.json"

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

    def add(self, digests: dict[str, str], in_storage: dict[str, str] | None = None) -> None:
        """Record new versions, and which of its own the storage holds (`in_storage`: what it holds now).
        Written atomically: a driver killed meanwhile leaves the previous record. A record that cannot be
        written (a read-only home) is a warning: the sweep goes on, and --resume would refuse its state."""
        try:
            self._write(digests, in_storage)
        except OSError as err:
            log.warning("could not record the digests of Tune's state in %s (%s): --resume may refuse it", self.path, err)

    def _write(self, digests: dict[str, str], in_storage: dict[str, str] | None) -> None:
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

    def forget(self) -> None:
        self.path.unlink(missing_ok=True)


def storage_state(experiment: str) -> dict[str, str]:
    """name -> digest of every state file at the top of the experiment's folder in the storage (path or URI)."""
    import pyarrow.fs

    fs, folder = pyarrow.fs.FileSystem.from_uri(experiment)
    infos = fs.get_file_info(pyarrow.fs.FileSelector(folder, allow_not_found=True))
    digests = {}
    for info in infos:
        if info.type == pyarrow.fs.FileType.File and info.base_name.endswith(STATE_SUFFIXES):
            with fs.open_input_stream(info.path) as f:
                digests[info.base_name] = sha256(f.readall())
    return digests


def check_recorded(experiment: str) -> None:
    """Before Ray reads an experiment's saved state: a SpecError naming the first file that this user's
    driver did not write (one that the storage's other writers added or changed)."""
    recorded = StateRecord(experiment)
    known = recorded.known()
    for name, digest in sorted(storage_state(experiment).items()):
        if digest not in known.get(name, ()) and not _unparsable_json(experiment, name):
            raise SpecError(
                f"Tune's state file {name} in {experiment} is not one this sweep's driver wrote (its SHA-256 is not in "
                f"{recorded.path}): it is not loaded, since unpickling it could run any code; if the storage was "
                "tampered with, start over with --fresh; if the sweep ran on another machine or as another user, "
                "resume it there"
            )


def _unparsable_json(experiment: str, name: str) -> bool:
    """A .json state file that is not JSON (an upload cut short by a full storage) cannot run code: Tune parses
    the JSON before it unpickles anything in it. Tune reads it as it would have; it is not refused."""
    if not name.endswith(".json"):
        return False
    import pyarrow.fs

    fs, folder = pyarrow.fs.FileSystem.from_uri(experiment)
    with fs.open_input_stream(f"{folder}/{name}") as f:
        text = f.readall()
    try:
        json.loads(text)
    except ValueError:
        return True
    return False


def new_tuner(*args, run_config, **kwargs) -> tune.Tuner:
    """tune.Tuner(...) with its state recorded: the tuner.pkl it has just written, and (guards) every
    experiment snapshot it will save."""
    experiment = experiment_path(run_config)
    record = StateRecord(experiment)
    record.forget()  # a new experiment: nothing earlier in its folder is loaded again
    run_config.callbacks = [*(run_config.callbacks or []), *guards(experiment)]
    tuner = tune.Tuner(*args, run_config=run_config, **kwargs)
    record.add({k: v for k, v in storage_state(experiment).items() if k == TUNER_FILE})
    return tuner


def restore_tuner(experiment: str, **kwargs) -> tune.Tuner:
    """tune.Tuner.restore, once every state file it would load is one this driver recorded."""
    check_recorded(experiment)
    return tune.Tuner.restore(experiment, **kwargs)


def analysis(experiment: str) -> tune.ExperimentAnalysis:
    """The experiment's trials as its saved state has them, once that state is one this driver recorded."""
    check_recorded(experiment)
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
            digests = {p.name: sha256(p.read_bytes()) for p in files}
        except OSError as err:  # the next snapshot tries again; until then --resume would refuse this one
            log.warning("could not read Tune's state in %s (%s): --resume may refuse it", staging, err)
            return
        self.record.add(digests, self._in_storage())


class ErrorsAsText(tune.Callback):
    """At the experiment's end, before Tuner.fit builds its ResultGrid, which would unpickle from the storage the
    error of every trial that did not finish: the trials forget their pickled error, so it reads error.txt."""

    def on_experiment_end(self, trials, **info):
        for trial in trials:
            trial.run_metadata.pickled_error_filename = None


def guards(experiment: str) -> list[tune.Callback]:
    """The callbacks of every Tuner of a sweep, new or restored: nothing in the storage runs as code."""
    return [RecordSnapshots(experiment), ErrorsAsText()]
