"""What a sweep's budget and its runs' device-hours do without a running Ray: an Optuna search under the
budget (no sample drawn that the budget would not run, resumable with a larger one), the sweep's limit of
trials at once carried by its searcher, and a resumed trial's device-hours adding up over its sessions."""

import types

import pytest
from mlflow.tracking import MlflowClient

from helpers import SWEEPS, Clock
from sweep_helpers import FakeTrial
from tokensweep.payload import Platform, grid_config
from tokensweep.spec import load_spec
from tokensweep.sweep import budget, tuner
from tokensweep.tracking import callback as callback_module
from tokensweep.tracking.callback import MlflowTrialLogger
from tokensweep.tracking.tracker import SweepTracker

PLATFORM = Platform("sqlite:////x.db", "s", True, 10.0, ())
RESULT = {"top1": 50.0, "images_per_sec": 1000.0, "epoch": 2}


def _search(tmp_path, gate, samples=5):
    spec = load_spec(SWEEPS / "channels-optuna.toml", smoke=True)
    optuna = tuner.optuna_searcher(spec, f"sqlite:///{tmp_path}/optuna.db")
    return budget.searching(budget.SearchUnderBudget(optuna, gate, samples), None)


def _study_size(tmp_path) -> int:
    import optuna

    return len(optuna.load_study(study_name="channels-optuna", storage=f"sqlite:///{tmp_path}/optuna.db").trials)


def test_an_optuna_search_draws_no_sample_the_budget_would_not_run_and_resumes_with_a_larger_one(tmp_path):
    gate = budget.BudgetGate(2.5, budget.TrialCost(1.0, {"trial 0": 1.0, "trial 1": 1.0}, wall_s=60.0, default_h=1.0))
    search = _search(tmp_path, gate)
    under = search.searcher
    assert under.suggest("t1") and under.suggest("t2")  # 1 + 1 planned (the plan's mean) <= 2.5
    assert under.suggest("t3") is None  # 2 running + 1 > 2.5: asked again as they end
    gate.running = {k: (n, 0.0) for k, (n, _) in gate.running.items()}  # started at the epoch: long overrun
    under.on_trial_complete("t1", RESULT), under.on_trial_complete("t2", RESULT)
    assert under.suggest("t3") == tuner.Searcher.FINISHED
    assert gate.not_started == ["sample 3", "sample 4", "sample 5"] and "3 trial(s) not started" in gate.summary()
    assert _study_size(tmp_path) == 2  # Optuna was asked for the two that ran only

    search._total_samples, search._counter, search._finished = 5, 2, True  # as Tune's generator ends it
    search.save_to_dir(str(tmp_path), "s1")
    larger = budget.BudgetGate(1e9, gate.cost)
    again = _search(tmp_path, larger)
    again.restore_from_dir(str(tmp_path))
    assert not again.is_finished() and again.searcher.suggested == 2
    assert gate.spent_h > 0 and larger.spent_h == pytest.approx(gate.spent_h)  # the hours spent come back
    assert all(again.searcher.suggest(f"t{i}") not in (None, tuner.Searcher.FINISHED) for i in (3, 4, 5))
    assert _study_size(tmp_path) == 5 and not larger.not_started


def test_the_search_leaves_the_plans_confirmation_hours_to_the_confirmation():
    cost = budget.TrialCost(1.0, {"trial 0": 1.0}, wall_s=60.0, default_h=1.0, reserved_h=1.0)
    gate = budget.BudgetGate(2.5, cost)
    assert gate.admit("t1", None, list, now=0.0)  # 1 planned + 1 kept for the confirmation <= 2.5
    assert gate.admit("t2", None, list, now=0.0) is None  # 1 running + 1 + 1 kept > 2.5: not yet
    assert budget.BudgetGate(2.5, budget.TrialCost(1.0, default_h=1.0)).allows(None)  # nothing kept: fits


def test_a_restored_tuner_gets_this_sessions_gate_whatever_wraps_its_searcher(tmp_path):
    old, new = (budget.BudgetGate(h, budget.TrialCost(1.0)) for h in (1.0, 9.0))
    for searcher in (tuner.GridSearcher([], old), budget.SearchUnderBudget(tuner.GridSearcher([]), old, 3)):
        search_alg = budget.searching(searcher, 2)
        job = types.SimpleNamespace(_local_tuner=types.SimpleNamespace(_tune_config=types.SimpleNamespace(search_alg=search_alg)))
        assert budget.set_gate(job, new) and searcher.gate is new


@pytest.mark.parametrize("limit", [1, 2])
def test_the_searcher_carries_the_sweeps_limit_of_trials_at_once(limit):
    spec = load_spec(SWEEPS / "smoke.toml")
    configs = [grid_config(i, v.name, v.values, PLATFORM) for i, v in enumerate(spec.variants)]
    search = budget.searching(tuner.GridSearcher(configs), limit)
    handed = [search.searcher.suggest(f"t{i}") for i in range(len(configs))]
    assert [c["variant"] for c in handed if c] == [v.name for v in spec.variants][:limit]
    search.searcher.on_trial_complete("t0")
    assert search.searcher.suggest("t9")["variant"] == spec.variants[limit].name
    assert budget.searching(tuner.GridSearcher(configs), None).searcher.__class__ is tuner.GridSearcher


def _logger(uri, tracker, cost):
    describe = lambda payload: ({"model": payload.values["model"]}, {})  # noqa: E731
    return MlflowTrialLogger(uri, "hours", tracker.experiment_id, tracker.parent_run_id, describe, cost=cost)


def _report(logger, trial, epoch):
    logger.on_trial_result(0, [], trial, {"epoch": epoch, "top1": 10.0 * epoch, "epoch_time_s": 1.0})


def test_a_resumed_trial_records_the_hours_of_every_session(tmp_path, monkeypatch):
    """Session 1 runs the trial 4000 s on 2 cores and is stopped mid-epoch 3; session 2 (a new driver, --resume)
    runs it 3600 s more. Its run holds all 7600 s x 2 cores; the first session's hours are on it meanwhile."""
    clock = Clock()
    monkeypatch.setattr(callback_module, "time", types.SimpleNamespace(time=clock, monotonic=clock))
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    tracker = SweepTracker(uri, "hours")
    tracker.start_parent(tune_path="/r/hours", command="c", tags={}, spec_text="", spec_name="s.toml", resolved={})
    cost = budget.TrialCost(2.0, {"tiny": 0.5}, wall_s=100.0, default_h=0.5)
    trial = FakeTrial("t_00000", "tiny", {"model": "vit_tiny_patch", "epochs": 3}, PLATFORM)

    first = _logger(uri, tracker, cost)
    first.on_trial_start(0, [], trial)
    clock.now = 1800.0
    _report(first, trial, 1)
    clock.now = 3600.0
    _report(first, trial, 2)
    clock.now = 4000.0
    first.on_experiment_end([trial])  # the sweep stopped with the trial running
    tracker.close_running_children("KILLED")
    client = MlflowClient(uri)
    (run,) = client.search_runs([tracker.experiment_id], "tags.`tokensweep.role` = 'trial'")
    assert run.data.metrics["device_hours"] == pytest.approx(4000 * 2 / 3600)

    again = _logger(uri, tracker, cost)  # a new driver (--resume): its own writer, which finds the run
    clock.now = 10_000.0
    again.on_trial_start(0, [], trial)
    clock.now = 12_000.0
    _report(again, trial, 3)
    clock.now = 13_600.0
    trial.last_result = {"epoch": 3}
    again.on_trial_complete(0, [], trial)
    assert first.errors == again.errors == 0
    run = client.get_run(run.info.run_id)
    assert run.data.metrics["device_hours"] == pytest.approx((4000 + 3600) * 2 / 3600)
    assert run.data.metrics["planned_device_hours"] == 0.5
    history = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, "device_hours"))
    assert [v for _, v in history] == sorted(v for _, v in history)  # the hours so far, epoch by epoch


def test_no_planned_hours_without_a_plan(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    tracker = SweepTracker(uri, "hours")
    tracker.start_parent(tune_path="/r/hours", command="c", tags={}, spec_text="", spec_name="s.toml", resolved={})
    logger = _logger(uri, tracker, budget.TrialCost(1.0))
    trial = FakeTrial("t_00001", "tiny", {"model": "vit_tiny_patch", "epochs": 1}, PLATFORM)
    logger.on_trial_start(0, [], trial)
    _report(logger, trial, 1)
    trial.last_result = {"epoch": 1}
    logger.on_trial_complete(0, [], trial)
    (run,) = MlflowClient(uri).search_runs([tracker.experiment_id], "tags.`tokensweep.role` = 'trial'")
    assert "device_hours" in run.data.metrics and "planned_device_hours" not in run.data.metrics
