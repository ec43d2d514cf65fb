"""The Optuna study as optuna-dashboard shows it, linked to MLflow both ways.

- `prepare_study`: the study exists before Tune's OptunaSearch opens it (it opens with
  load_if_exists), with its directions and its objectives' names, so optuna-dashboard says `top1` and
  `images_per_sec` rather than "0" and "1".
- `OptunaRunLinks`: a Tune callback on the driver that stores on each Optuna trial, through the
  study's storage, the MLflow run of that trial and its configuration (user attributes), once the
  MLflow callback has made the run; every MLflow child run already carries `optuna_trial_number`.

Imports Optuna inside functions: loaded only for [search] sweeps.
"""

from __future__ import annotations

import logging
import warnings

from ray import tune

from tokensweep.sweep.space import TrialPayload

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
