"""SweepTracker, the one writer of a sweep's MLflow runs, and the commit the sweep ran from.

The commit a sweep ran from, for its parent run ("-dirty" when tracked files had changes).

SweepTracker: the one writer of a sweep's MLflow runs, from the driver.

One experiment per sweep name, one parent run per sweep, one child run per trial. All of it is
written from the sweep's driver process, for three reasons:
- one writer: a sqlite store sees its writes one at a time instead of 2-8 trial processes racing
  for its lock ("database is locked"); what still contends (system-metric samples written by the
  trials themselves, another sweep) goes through `retry`;
- the driver sees every way a trial ends, including a worker process that dies, so no child run
  is left RUNNING;
- a sqlite file on the head node works even when trials run on other nodes.
Child runs are found by their `trial_id` tag (Tune's trial id, stable across `Tuner.restore`)
before one is created, so a resumed sweep never makes a second run for a trial. MLflow is asked only
where a run this tracker did not make may exist (a resumed parent, a creation that failed midway):
under a parent this process created, its own record is complete, and a search per trial would grow
with the sweep.

Imports MLflow at import time: import it only once a spec has been validated.
"""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import time
from pathlib import Path

from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param, RunTag
from mlflow.exceptions import MlflowException

import vocab
from vocab.values import as_text
from tokensweep.tracking import tags as T
from tokensweep.tracking.store import all_runs, open_store, quote, sqlite_path


def git_commit(cwd: str | None = None) -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd or Path(__file__).parent, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = out.stdout.strip()
    if out.returncode != 0 or not commit:
        return None
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        cwd=cwd or Path(__file__).parent,
        capture_output=True,
        text=True,
        timeout=5,
    )
    return commit + ("-dirty" if dirty.returncode == 0 and dirty.stdout.strip() else "")


# A metric every epoch's report carries: its history tells which epochs a run already has.
STEP_METRIC = "epoch_time_s"
COST_METRIC = "device_hours"  # what a trial has cost so far: a resumed trial's sessions add up


@dataclasses.dataclass(frozen=True)
class FinishedRun:
    """A trial's run that is done: its Tune trial id, grid variant (None for a search), last epoch, metrics."""

    trial_id: str
    variant: int | None
    epoch: int
    metrics: dict


def now_ms() -> int:
    return int(time.time() * 1000)


def split_result(result: dict) -> tuple[dict[str, float], dict[str, str]]:
    """A trial's report -> (metrics, tags): vocab's tags and other text become tags, numbers metrics."""
    metrics, tags = {}, {}
    for key, value in result.items():
        if value is None or key.startswith("_") or "/" in key:
            continue
        if key in vocab.TAGS or isinstance(value, (str, bool)):
            tags[key] = as_text(value)
        elif isinstance(value, (int, float)) and math.isfinite(value):
            metrics[key] = float(value)
    return metrics, tags


def dataset_inputs(description: dict) -> list[DatasetInput]:
    """The MLflow dataset input of a trials.data.describe.DataDescription (as a dict).

    One input for both splits: MLflow keeps one record per (name, digest), so a second input of the
    same data could not carry the validation split's own profile; the profile holds both sizes.
    """
    if description["source_kind"] == "folder":
        source_type, source = "local", {"uri": Path(description["source"]).as_uri()}
    else:
        source_type, source = "code", {"tags": {"generator": description["source"]}}
    sizes = description["sizes"]
    profile = {"num_rows": sum(sizes.values()), **{f"{split}_images": n for split, n in sizes.items()},
               "classes": description["classes"], "form": description["form"]}  # fmt: skip
    dataset = Dataset(description["name"], description["digest"], source_type, json.dumps(source), profile=json.dumps(profile))
    return [DatasetInput(dataset, tags=[InputTag(T.DATASET_CONTEXT, "training")])]


class SweepTracker:
    """Driver-side writer of one sweep's MLflow runs: every write of the platform goes through it."""

    def __init__(self, tracking_uri: str, sweep_name: str):
        self.tracking_uri = tracking_uri
        self.sweep_name = sweep_name
        self.client = open_store(tracking_uri)  # a new sqlite store: created once, whoever else opens it now
        self.experiment_id: str | None = None
        self.parent_run_id: str | None = None
        self.resumed_parent = False  # start_parent(resume=True) found the sweep's parent run
        self.killed: list[tuple[str, int]] = []  # (run name, epoch reached) of trial runs closed as KILLED at the end
        self.new_parent = False  # the parent was created here: every child run of it is in _children
        self._children: dict[str, str] = {}  # tune trial id -> run id
        self._creating: set[str] = set()  # trial ids whose run creation failed: it may have reached the store
        self._last_epoch: dict[str, tuple[int, int]] = {}  # run id -> (step, timestamp ms) of the last epoch logged
        self._hours_before: dict[str, float] = {}  # run id -> its device_hours when this session (re)started it
        self._parent_datasets: set[str] = set()  # digests logged to the parent run by this tracker

    # --- any run ---
    def tag(self, run_id: str, **tags) -> None:
        """Set tags (values as MLflow shows them: true/false, numbers as text) in one request."""
        if tags:
            self.client.log_batch(run_id, tags=[RunTag(k, as_text(v)) for k, v in tags.items()])

    def tags_of(self, run_id: str) -> dict[str, str]:
        return self.client.get_run(run_id).data.tags

    # --- experiment and parent ---
    def ensure_experiment(self) -> str:
        exp = self.client.get_experiment_by_name(self.sweep_name)
        if exp is None:
            kwargs = {}
            db = sqlite_path(self.tracking_uri)
            if db:  # artifacts beside the database, not wherever the first run happened to start
                kwargs["artifact_location"] = Path(Path(db).parent, "mlartifacts", self.sweep_name).as_uri()
            try:
                tags = {T.SWEEP: self.sweep_name, T.EXPERIMENT_KIND: T.KIND_MODEL_TRAINING}
                self.experiment_id = self.client.create_experiment(self.sweep_name, tags=tags, **kwargs)
            except MlflowException:  # created meanwhile by a concurrent process
                self.experiment_id = self.client.get_experiment_by_name(self.sweep_name).experiment_id
        else:
            if exp.lifecycle_stage != "active":
                self.client.restore_experiment(exp.experiment_id)
            self.experiment_id = exp.experiment_id
            if T.EXPERIMENT_KIND not in exp.tags:  # made by an older tokensweep, or by hand
                self.client.set_experiment_tag(self.experiment_id, T.EXPERIMENT_KIND, T.KIND_MODEL_TRAINING)
        return self.experiment_id

    def find_parent(self, sweep_id: str | None, tune_path: str) -> str | None:
        """The sweep's parent run: by its sweep id (a sweep started without one: by its Tune folder)."""
        key, value = (T.SWEEP_ID, sweep_id) if sweep_id else (T.TUNE_PATH, tune_path)
        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`{T.ROLE}` = 'sweep' and tags.`{key}` = {quote(value)}",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        return runs[0].info.run_id if runs else None

    def start_parent(self, *, tune_path: str, command: str, tags: dict, spec_text: str, spec_name: str,
                     resolved: dict, resume: bool = False, sweep_id: str | None = None) -> str:  # fmt: skip
        """The sweep's parent run: found again on --resume (set RUNNING, its resume counted, where its Tune folder
        is now), else a new one."""
        self.ensure_experiment()
        run_id = self.find_parent(sweep_id, tune_path) if resume else None
        if run_id is not None:
            self.parent_run_id, self.resumed_parent = run_id, True
            self.client.update_run(run_id, status="RUNNING")
            resumes = int(self.tags_of(run_id).get(T.RESUMES, "0")) + 1
            self.tag(run_id, **{T.RESUMES: resumes, T.RESUME_COMMAND: command[:5000], T.TUNE_PATH: tune_path})
            return run_id
        self._close_stale_parents(tune_path)
        all_tags = {T.ROLE: "sweep", T.TUNE_PATH: tune_path, T.COMMAND: command[:5000], T.SWEEP: self.sweep_name, **tags}
        if sweep_id:
            all_tags[T.SWEEP_ID] = sweep_id
        commit = git_commit()
        if commit:
            all_tags[T.GIT_COMMIT] = commit.removesuffix("-dirty")
            all_tags[T.DIRTY_COMMIT] = commit  # "-dirty": uncommitted changes to tracked files
        run = self.client.create_run(self.experiment_id, tags={k: as_text(v) for k, v in all_tags.items()},
                                     run_name=self.sweep_name)  # fmt: skip
        self.parent_run_id, self.new_parent = run.info.run_id, True
        self.client.log_text(self.parent_run_id, spec_text, f"spec/{Path(spec_name).name or 'spec.toml'}")
        self.client.log_dict(self.parent_run_id, resolved, "spec/resolved.json")
        return self.parent_run_id

    def _close_stale_parents(self, tune_path: str) -> None:
        """A sweep started over (--fresh, or a driver killed before Tune saved any state) leaves its
        old parent and children RUNNING: mark them KILLED."""
        stale = self.search_all(
            f"tags.`{T.ROLE}` = 'sweep' and tags.`{T.TUNE_PATH}` = {quote(tune_path)} and attributes.status = 'RUNNING'"
        )
        for run in stale:
            self.parent_run_id = run.info.run_id
            self.close_running_children("KILLED")
            self.client.set_terminated(run.info.run_id, status="KILLED")
        self.parent_run_id = None

    def end_parent(self, status: str, tags: dict | None = None) -> None:
        if self.parent_run_id is None:
            return
        self.tag(self.parent_run_id, **(tags or {}))
        self.client.set_terminated(self.parent_run_id, status=status)

    # --- children ---
    def find_child(self, trial_id: str) -> str | None:
        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`{T.TRIAL_ID}` = {quote(trial_id)} and tags.`{T.PARENT}` = {quote(self.parent_run_id)}",
            max_results=2,
        )
        return runs[0].info.run_id if runs else None

    def start_child(self, trial_id: str, name: str, params: dict, tags: dict) -> str:
        """The trial's run: the existing one (set RUNNING again) or a new one with params logged.

        A grid trial's run is also found by its variant (`tags[T.VARIANT]`) when Tune's saved state had
        lost the trial (a driver killed before Tune's next snapshot) and Tune made it again under a new id.
        """
        run_id = self.child_id(trial_id)
        if run_id is None and tags.get(T.VARIANT) is not None:
            run_id = self._adopt_variant_run(trial_id, tags[T.VARIANT])
        if run_id is not None:
            self._children[trial_id] = run_id
            run = self.client.get_run(run_id)
            self._hours_before[run_id] = run.data.metrics.get(COST_METRIC, 0.0)  # what earlier sessions spent on it
            if run.info.status != "RUNNING":  # a resumed (or retried-on-resume) trial
                reason = run.data.tags.get(T.FAILURE_REASON)
                if reason:
                    self.client.delete_tag(run_id, T.FAILURE_REASON)
                    self.tag(run_id, **{T.PREVIOUS_FAILURE: reason})
                if T.INTERRUPTED_AT_EPOCH in run.data.tags:
                    self.client.delete_tag(run_id, T.INTERRUPTED_AT_EPOCH)
                self.client.update_run(run_id, status="RUNNING")
            return run_id
        all_tags = {T.PARENT: self.parent_run_id, T.ROLE: "trial", T.TRIAL_ID: trial_id, **tags}
        self._creating.add(trial_id)  # until its id is known: a request that failed may have created it
        run = self.client.create_run(self.experiment_id, tags={k: as_text(v) for k, v in all_tags.items()}, run_name=name)
        run_id = run.info.run_id
        self._children[trial_id] = run_id
        self._creating.discard(trial_id)
        self._last_epoch[run_id] = (0, 0)
        if params:
            self.client.log_batch(run_id, params=[Param(k, as_text(v)) for k, v in params.items()])
        return run_id

    def _adopt_variant_run(self, trial_id: str, variant) -> str | None:
        """The unfinished run of this grid variant under the parent, now the run of `trial_id`."""
        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`{T.PARENT}` = {quote(self.parent_run_id)} and tags.`{T.VARIANT}` = {quote(as_text(variant))} "
            "and attributes.status != 'FINISHED'",
            max_results=2,
        )
        if not runs:
            return None
        run = runs[0]
        self.tag(run.info.run_id, **{T.TRIAL_ID: trial_id, T.PREVIOUS_TRIAL_ID: run.data.tags.get(T.TRIAL_ID, "")})
        return run.info.run_id

    def finished_children(self) -> list[FinishedRun]:
        """The parent's trial runs that are done: FINISHED with every epoch logged (or stopped early by
        the scheduler, which says so). What a resumed sweep must neither run nor touch again."""
        done = []
        for run in self.search_all(f"tags.`{T.PARENT}` = {quote(self.parent_run_id)} and attributes.status = 'FINISHED'"):
            steps = {m.key: m.step for m in run.data.to_proto().metrics}  # each metric's latest step
            last = steps.get(STEP_METRIC, 0)
            try:
                epochs = int(run.data.params.get("epochs", ""))
            except ValueError:
                continue
            stopped_early = run.data.tags.get(T.STOPPED_EARLY) == "true"
            if last >= epochs or (stopped_early and last > 0):
                variant = run.data.tags.get(T.VARIANT)
                metrics = {k: v for k, v in run.data.metrics.items() if "/" not in k}  # not system/...
                done.append(FinishedRun(run.data.tags.get(T.TRIAL_ID, ""), int(variant) if variant else None, last, metrics))
        return done

    def child_id(self, trial_id: str) -> str | None:
        """The trial's run, if it has one: from this tracker's record, or from MLflow where that may be incomplete."""
        run_id = self._children.get(trial_id)
        if run_id is None and (not self.new_parent or trial_id in self._creating):
            run_id = self.find_child(trial_id)
            if run_id is not None:
                self._children[trial_id] = run_id
        return run_id

    def hours_before(self, run_id: str) -> float:
        """The device-hours a reused run had when this session started its trial again (0: a new run)."""
        return self._hours_before.get(run_id, 0.0)

    def last_logged_step(self, run_id: str) -> int:
        """The last epoch logged to a trial's run (0: none); read from MLflow once for a reused run."""
        if run_id not in self._last_epoch:
            history = self.client.get_metric_history(run_id, STEP_METRIC)
            steps, times = [m.step for m in history], [m.timestamp for m in history]
            self._last_epoch[run_id] = (max(steps, default=0), max(times, default=0))
        return self._last_epoch[run_id][0]

    def log_result(self, run_id: str, result: dict, step: int, timestamp_ms: int | None = None) -> None:
        """The result's metrics and tags in one request, its metrics stamped `timestamp_ms` (default: now).

        MLflow keeps a metric row once per (key, value, step, timestamp), and a store commits a batch's metrics
        apart from its tags: a batch that failed after its metrics and is sent again with the same timestamp
        adds no second row.

        An epoch is stamped after the run's last one: MLflow orders a metric's history by time, and an epoch
        caught up from Tune's saved results carries Tune's whole-second time, which can fall before the
        previous epoch's, logged live to the millisecond."""
        if isinstance(result.get("_dataset"), dict):  # the trial's first report describes its data
            self.log_dataset(run_id, result["_dataset"])
        metrics, tags = split_result(result)
        last_step, last_ms = self._last_epoch.get(run_id, (0, 0))
        ts = timestamp_ms or now_ms()
        if STEP_METRIC in metrics:
            ts = max(ts, last_ms + 1)
        self.client.log_batch(
            run_id,
            metrics=[Metric(k, v, ts, step) for k, v in metrics.items()],
            tags=[RunTag(k, v) for k, v in tags.items()],
        )
        if STEP_METRIC in metrics:
            self._last_epoch[run_id] = (max(step, last_step), ts)

    def log_dataset(self, run_id: str, description: dict) -> None:
        """The trial's data as an MLflow dataset input (the UI's Dataset column, `datasets.digest` filters),
        and its digest as a tag (an export column)."""
        inputs = dataset_inputs(description)
        self.client.log_inputs(run_id, datasets=inputs)
        self.tag(run_id, dataset_digest=description["digest"])
        if self.parent_run_id and description["digest"] not in self._parent_datasets:  # the sweep's row shows its data too
            self.client.log_inputs(self.parent_run_id, datasets=inputs)
            self._parent_datasets.add(description["digest"])

    def end_child(self, run_id: str, status: str, reason: str | None = None) -> None:
        if reason:
            self.tag(run_id, **{T.FAILURE_REASON: reason[:5000]})
        self.client.set_terminated(run_id, status=status)

    def close_running_children(self, status: str = "KILLED") -> list[tuple[str, int]]:
        """Mark every child of the parent still RUNNING (its trial did not end) as `status`, tagged with the
        epoch it reached; (run name, epoch) of each."""
        if self.parent_run_id is None:
            return []
        closed = []
        for run in self.search_all(f"tags.`{T.PARENT}` = {quote(self.parent_run_id)} and attributes.status = 'RUNNING'"):
            run_id = run.info.run_id
            epoch = self.last_logged_step(run_id)
            self.tag(run_id, **{T.INTERRUPTED_AT_EPOCH: epoch})  # how far it got
            self.client.set_terminated(run_id, status=status)
            closed.append((run.info.run_name or run_id, epoch))
        return closed

    def search_all(self, filter_string: str) -> list:
        """Every run of the experiment that matches (tokensweep.tracking.store.all_runs)."""
        return all_runs(self.client.search_runs, [self.experiment_id], filter_string)
