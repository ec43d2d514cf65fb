"""How Tune picks the next trial: the grid's variants in order, or Optuna; and when it stops one (ASHA)."""

from __future__ import annotations

import json

from ray.tune.search import Searcher

from tokensweep.spec import SweepSpec
from tokensweep.sweep.search_throughput import SearchSettings, reported_key, study_note

THROUGHPUT_ATTR = "throughput"  # the study's user attribute: how its images_per_sec was measured


class GridSearcher(Searcher):
    """The grid's trials in order, each config carrying only its own values.

    Tune's own `grid_search` puts every variant into the spec it deep-copies for every grid point,
    which is quadratic in the grid's size; a searcher hands out one config at a time. Its saved state
    is where it got to (the configs themselves come back with the pickled Tuner on --resume).
    """

    gate = None  # also for a grid pickled before budgets existed, restored by --resume

    def __init__(self, configs: list[dict], gate=None):
        super().__init__()
        self._configs = configs
        self._next = 0
        self.gate = gate  # tokensweep.sweep.budget.BudgetGate: whether the next trial fits the budget

    def suggest(self, trial_id: str):
        if self._next >= len(self._configs):
            return Searcher.FINISHED
        config = self._configs[self._next]
        if self.gate is not None and not self.gate.allows(config["variant"]):
            if self.gate.running:
                return None  # asked again as they end: what they spent may leave room
            self.gate.not_started = [c["variant"] for c in self._configs[self._next :]]
            return Searcher.FINISHED
        if self.gate is not None:
            self.gate.started(trial_id, config["variant"])
        self._next += 1
        return config

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
    (`throughput`: the search's settings, tokensweep.sweep.search_throughput); the study says how its
    images_per_sec was measured (user attribute `throughput`)."""
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    from tokensweep.sweep.optuna_links import prepare_study, rdb_storage

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
    from tokensweep.sweep.optuna_links import OptunaRunLinks

    return [OptunaRunLinks(storage_url, spec.name, mlflow_logger, mlflow_logger.describe, mlflow_logger.experiment_id, tracking_uri)]


def delete_optuna_study(storage_url: str, name: str) -> None:
    import optuna

    try:
        optuna.delete_study(study_name=name, storage=storage_url)
    except KeyError:
        pass


def scheduler(spec: SweepSpec):
    """Tune's scheduler for the spec: ASHA, or FIFO (both choosing the next trial at a constant cost)."""
    from tokensweep.sweep.schedulers import FifoScheduler

    return asha_scheduler(spec) or FifoScheduler()


def asha_scheduler(spec: SweepSpec):
    if spec.scheduler != "asha":
        return None
    from tokensweep.sweep.schedulers import AshaScheduler

    return AshaScheduler(
        time_attr="epoch",
        metric=spec.scheduler_metric,
        mode=spec.scheduler_mode,
        max_t=spec.max_t,
        grace_period=spec.grace_period,
        reduction_factor=spec.reduction_factor,
    )
