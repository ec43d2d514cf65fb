"""An Optuna search under a budget, on real Ray (the worker's shared head) and real MLflow (sqlite): the
budget runs out mid-search, the sweep says how many samples it did not start and confirms no front yet,
and `--resume` with a larger budget runs them, one MLflow run per trial, every run with its device-hours,
then confirms the front."""

import json

from helpers import ONE_AT_A_TIME, SWEEPS, run_cli
from sweep_helpers import sweep_runs
from test_plan_sweep import optimistic_calibration

OPTUNA = ["run", SWEEPS / "channels-optuna.toml"]
# 3 samples of 1 CPU each, one at a time, 2 epochs of 2 steps, the front confirmed with seed 1, no bench stage, no
# system metrics
SHAPE = ["--smoke", "--set", "trial.epochs=2", "--set", "trial.max_steps_per_epoch=2", "--set", "search.confirm_seeds=[1]",
         "--set", "bench.enabled=false", "--set", "tracking.system_metrics=false", "--set", ONE_AT_A_TIME]  # fmt: skip


def test_an_optuna_search_stops_at_its_budget_and_resume_with_more_runs_the_rest(tmp_path, ray_head):
    env = {**ray_head.env, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    fast = optimistic_calibration(tmp_path, env, (SWEEPS / "channels-optuna.toml", *SHAPE))
    plan = json.loads(run_cli(["plan", SWEEPS / "channels-optuna.toml", *SHAPE, "--calibration", fast, "--json"],
                              cwd=tmp_path, env=env, check_rc=0).stdout)  # fmt: skip
    # the plan fits (its trials are only their fixed costs, ~1-4 s each); the trials do not: a sample starts only
    # while the hours spent, the running trials' and one more at the plan's mean fit, and a slot frees only when a
    # trial that ran longer than its plan ends, so at least the last sample cannot start
    # (the plan's confirmation stage is kept out of what the samples may spend)
    common = [*SHAPE, "--calibration", fast, "--address", ray_head.address, "--quiet"]
    first = run_cli([*OPTUNA, *common, "--set", f"sweep.budget_hours={plan['device_hours'] * 1.02}"], cwd=tmp_path,
                    env=env, timeout=600)  # fmt: skip
    assert first.returncode == 1, first.stdout + first.stderr
    assert "sample(s)" not in first.stdout and "trial(s) not started: sample " in first.stdout
    (parent,), children = sweep_runs(tmp_path / "mlflow.db", "channels-optuna")
    not_started = parent.data.tags["tokensweep.budget_not_started"].split(", ")
    assert 1 <= len(children) <= 2 and len(children) + len(not_started) == 3  # no confirmation of a partial front
    assert not_started == [f"sample {k}" for k in range(len(children) + 1, 4)]
    assert all(c.info.status == "FINISHED" for c in children)

    run_cli([*OPTUNA, *common, "--resume", "--set", "sweep.budget_hours=10"], cwd=tmp_path, env=env, timeout=600,
            check_rc=0)  # fmt: skip
    (parent,), runs = sweep_runs(tmp_path / "mlflow.db", "channels-optuna")
    children = [c for c in runs if "optuna_trial_number" in c.data.params]
    numbers = sorted(int(c.data.params["optuna_trial_number"]) for c in children)
    assert numbers == [0, 1, 2]  # num_samples in all, one run per trial: those of the first session not run again
    confirmations = [c for c in runs if "optuna_trial_number" not in c.data.params]
    assert confirmations and all(c.data.params["seed"] == "1" for c in confirmations)  # the whole search's front
    assert all(c.info.status == "FINISHED" and c.data.metrics["device_hours"] > 0 for c in runs)
    assert parent.data.metrics["sweep_device_hours"] > 0

    import optuna

    study = optuna.load_study(study_name="channels-optuna", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 3  # no sample drawn and dropped
