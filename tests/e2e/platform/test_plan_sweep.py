"""A plan against the sweep it plans, and a budget that holds, on real Ray and real MLflow (sqlite).

How close the plan comes to the actuals depends on the machine's load (2 shared cores here), so the
ratio is the benchmark's (`python -m benchmarks plan`); these tests check that every figure is recorded
and consistent, that a budget below the plan writes nothing, and that a budget that runs out stops
starting trials which `--resume` with a larger one then runs, one run per trial."""

import json

import pytest

from helpers import ONE_AT_A_TIME, SWEEPS, run_cli
from sweep_helpers import sweep_runs

pytestmark = pytest.mark.slow

SMOKE = str(SWEEPS / "smoke.toml")
# No bench stage, no system metrics, one trial at a time: not what these tests check
QUIET_SWEEP = ["--set", "bench.enabled=false", "--set", "tracking.system_metrics=false", "--set", ONE_AT_A_TIME]


@pytest.fixture(scope="module")
def calibration_cache(tmp_path_factory):
    """One calibration cache for the module: each architecture is measured once, by the first plan that needs it."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture
def env(ray_token_env, calibration_cache):
    return {**ray_token_env, "XDG_CACHE_HOME": str(calibration_cache)}


def test_plan_then_the_sweep_records_actual_and_planned_device_hours(tmp_path, env, ray_head):
    # 1 epoch of 2 steps on a small generated set: the figures are recorded whatever the trials' size
    shape = [*QUIET_SWEEP, "--set", "trial.epochs=1", "--set", "trial.max_steps_per_epoch=2",
             "--set", "trial.tiny_train_per_class=16", "--set", "trial.tiny_val_per_class=8", "--address", ray_head.address]  # fmt: skip
    planned = json.loads(run_cli(["plan", SMOKE, *shape, "--json"], cwd=tmp_path, env=env, check_rc=0).stdout)
    run = run_cli(["run", SMOKE, *shape, "--quiet"], cwd=tmp_path, env=env, timeout=600, check_rc=0)
    (parent,), children = sweep_runs(tmp_path / "mlflow.db", "smoke")
    assert len(children) == planned["trials"] == 4
    per_trial = {t["name"]: t["device_hours"] for t in planned["per_trial"]}
    for child in children:
        m = child.data.metrics
        wall_h = (child.info.end_time - child.info.start_time) / 3.6e6
        # one core per trial: its device-hours are its run's wall time, give or take MLflow's writes (0.5 s)
        assert m["device_hours"] == pytest.approx(wall_h, abs=0.5 / 3600)
        # the same plan (the calibration cached by `plan`), so the same figure per trial
        assert m["planned_device_hours"] == pytest.approx(per_trial[child.info.run_name], rel=1e-9)
    p = parent.data.metrics
    assert p["sweep_device_hours"] == pytest.approx(sum(c.data.metrics["device_hours"] for c in children))
    assert p["planned_sweep_device_hours"] == pytest.approx(planned["device_hours"])
    assert p["device_hours_ratio"] == pytest.approx(p["sweep_device_hours"] / p["planned_sweep_device_hours"])
    assert p["planned_wall_s"] == pytest.approx(planned["wall_s"], rel=1e-9)
    assert p["wall_ratio"] == pytest.approx(p["sweep_wall_s"] / p["planned_wall_s"])
    assert 0 < p["sweep_wall_s"] and "budget" not in run.stdout


def test_a_budget_below_the_plan_is_refused_before_anything_is_written(tmp_path, env):
    proc = run_cli(["run", SMOKE, "--set", "sweep.budget_hours=0.0001"], cwd=tmp_path, env=env, check_rc=2)
    err = proc.stderr.strip()
    assert "\n" not in err and "device-hours, over sweep.budget_hours = 0.0001" in err
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "ray_results").exists()


def optimistic_calibration(tmp_path, env, spec_args=(SMOKE,)) -> str:
    """A calibration from a machine far faster than this one: the plan then underestimates every trial."""
    saved = tmp_path / "measured.json"
    run_cli(["plan", *spec_args, "--cpus", "2", "--save-calibration", saved], cwd=tmp_path, env=env, check_rc=0)
    doc = json.loads(saved.read_text())
    for entry in doc["calibrations"]:
        c = entry["calibration"]
        for rate in ("train_images_per_sec", "eval_images_per_sec", "loader_images_per_sec"):
            c[rate] *= 1000
        c["setup_s"] = c["measure_s"] = 0.0
    fast = tmp_path / "fast.json"
    fast.write_text(json.dumps(doc))
    return str(fast)


def test_a_budget_that_runs_out_stops_starting_trials_and_resume_with_more_finishes_them(tmp_path, env, ray_head):
    fast = optimistic_calibration(tmp_path, env)
    shape = [*QUIET_SWEEP, "--set", "trial.epochs=3", "--address", ray_head.address, "--calibration", fast]
    common = [*shape, "--quiet"]
    plan = json.loads(run_cli(["plan", SMOKE, *shape, "--json"], cwd=tmp_path, env=env, check_rc=0).stdout)
    # the plan fits; the trials' real hours do not. The plan of a trial is its fixed costs only, 0.3 s + 0.3 s per
    # epoch (1.2 s); the trial trains on 3 x 2000 images and evaluates 3 x 500, >= 2.5 s on one core of any CPU
    # (the tiny model trains at ~1,000-3,000 images/sec). The last trial starts only if the two first ran at most
    # 1.1 x their plan: it cannot
    budget = plan["device_hours"] * 1.05
    first = run_cli(["run", SMOKE, *common, "--set", f"sweep.budget_hours={budget}"], cwd=tmp_path, env=env, timeout=600)
    assert first.returncode == 1, first.stdout + first.stderr
    assert "trial(s) not started" in first.stdout and "--resume --set sweep.budget_hours=HOURS" in first.stdout
    (parent,), children = sweep_runs(tmp_path / "mlflow.db", "smoke")
    started = {c.info.run_name for c in children}
    not_started = parent.data.tags["tokensweep.budget_not_started"].split(", ")
    assert 1 <= len(started) <= 3 and started.isdisjoint(not_started) and len(started) + len(not_started) == 4
    assert all(c.info.status == "FINISHED" for c in children)

    run_cli(["run", SMOKE, *common, "--resume", "--set", "sweep.budget_hours=10"], cwd=tmp_path, env=env,
            timeout=600, check_rc=0)  # fmt: skip
    (parent,), children = sweep_runs(tmp_path / "mlflow.db", "smoke")
    names = sorted(c.info.run_name for c in children)
    assert len(names) == len(set(names)) == 4  # one run per trial: the first two not run again
    assert all(c.info.status == "FINISHED" and "device_hours" in c.data.metrics for c in children)
