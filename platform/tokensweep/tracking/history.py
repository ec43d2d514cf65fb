"""What earlier trials measured: the speeds of FINISHED trial runs in an MLflow store, for a sweep's plan.

Read-only: a store that does not exist is no history (nothing is created), one that cannot be read is
no history with the reason kept (`problem`), said only if the plan needed it. MLflow is imported at the
first search, so a plan that never asks imports none.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tokensweep.tracking import tags as T
from tokensweep.tracking.store import all_runs, damage, one_line, quote, redact, sqlite_path, tracking_uri_problem

SPEED = "train_images_per_sec"  # a trial that measured (TrialConfig.measure) records it with its last epoch


@dataclass(frozen=True)
class RunSpeed:
    """One finished trial run's figures (vocab's names): what a plan can take from it."""

    device: str  # the device model the trial ran on (vocab tag `device`)
    train_images_per_sec: float  # compute only, timed after training
    images_per_sec: float  # inference, timed after training
    epoch_images_per_sec: float | None  # the last epoch's training rate, loading included
    epoch_time_s: float | None  # the last epoch: training and validation
    epochs: int
    wall_s: float  # the run's start to its end
    train_images: int | None  # the data set's splits (the run's dataset input)
    val_images: int | None


class RunHistory:
    """The trial runs of a store, searched by the params and tags that define an architecture."""

    def __init__(self, tracking_uri: str):
        self.tracking_uri = tracking_uri
        self.problem: str | None = None  # why the store could not be read, once a search found that
        self._client = None

    def speeds(self, params: dict[str, str], tags: dict[str, str]) -> list[RunSpeed]:
        """Every FINISHED trial run whose params and tags have these values and that measured its speed."""
        client = self._open()
        if client is None:
            return []
        where = ["attributes.status = 'FINISHED'", f"tags.`{T.ROLE}` = 'trial'", f"metrics.{SPEED} > 0"]
        where += [f"params.`{k}` = {quote(v)}" for k, v in params.items()]
        where += [f"tags.`{k}` = {quote(v)}" for k, v in tags.items()]
        from mlflow.exceptions import MlflowException

        try:
            experiments = [e.experiment_id for e in all_pages(client.search_experiments)]
            runs = all_runs(client.search_runs, experiments, " and ".join(where)) if experiments else []
        except MlflowException as err:
            self.problem = one_line(err)
            return []
        return [speed for speed in map(run_speed, runs) if speed is not None]

    def _open(self):
        if self._client is None and self.problem is None:
            db = sqlite_path(self.tracking_uri)
            if db is not None and not Path(db).is_file():
                return None  # no store yet: no history, and none is made
            self.problem = tracking_uri_problem(self.tracking_uri, existing=True) or (damage(db) if db else None)
            if self.problem is None:
                from mlflow import MlflowClient

                self._client = MlflowClient(self.tracking_uri)
        return self._client

    def where(self) -> str:
        """The store, and why it could not be read if it could not."""
        return redact(self.tracking_uri) + (f" ({self.problem})" if self.problem else "")


def all_pages(search) -> list:
    """Every item of a paged MLflow search (search_experiments)."""
    items, token = [], None
    while True:
        page = search(page_token=token)
        items += page
        token = page.token
        if not token:
            return items


def run_speed(run) -> RunSpeed | None:
    """A run's figures; None where it lacks what a plan needs (its epochs, its end, its device, its inference speed)."""
    m, data = run.data.metrics, run.data
    try:
        epochs = int(data.params["epochs"])
    except (KeyError, ValueError):
        return None
    if run.info.end_time is None or "images_per_sec" not in m or not data.tags.get("device"):
        return None
    sizes = _sizes(run)
    return RunSpeed(device=data.tags["device"], train_images_per_sec=m[SPEED], images_per_sec=m["images_per_sec"],
                    epoch_images_per_sec=m.get("train_images_per_sec_epoch"), epoch_time_s=m.get("epoch_time_s"),
                    epochs=epochs, wall_s=(run.info.end_time - run.info.start_time) / 1000,
                    train_images=sizes.get("train_images"), val_images=sizes.get("val_images"))  # fmt: skip


def _sizes(run) -> dict:
    """The data set's split sizes, from the profile of the run's dataset input (tracker.dataset_inputs)."""
    for dataset_input in run.inputs.dataset_inputs if run.inputs else ():
        try:
            return json.loads(dataset_input.dataset.profile or "{}")
        except ValueError:
            continue
    return {}
