"""The sweep's MLflow sqlite store deleted (`rm mlflow.db`) or replaced by another store (`mv other.db mlflow.db`)
mid-sweep.

The driver is paused (SIGSTOP) once the first trial has finished and the others run, the store is deleted or
replaced, and the driver continues (SIGCONT): the timing is the test's, not the machine's. Wanted: one line
saying the store is gone (or another), no traceback, every trial finishing in Tune (none failed or retried
because tracking failed, although each trial's system-metrics monitor writes to the store from its worker),
nothing written to the other store, exit 1 with the count of writes not recorded (the outage wording); then
`--resume` against a new store (after a delete) or the restored one (a backup, after a replace) records every
trial once: one parent, one FINISHED run per trial, every epoch once.
"""

import os
import shutil
import signal
import sqlite3

import pytest
from mlflow import MlflowClient
from ray import tune

from rel_helpers import INTERRUPTIBLE_SPEC, INTERRUPTIBLE_TRIALS, interrupted_sweep
from helpers import run_cli
from sweep_helpers import metric_steps, sweep_runs

pytestmark = pytest.mark.slow

# each trial's worker writes to the store too
SYSTEM_METRICS = ["--set", "tracking.system_metrics=true", "--set", "tracking.system_metrics_interval_s=1.0"]


def _sweep_with_store_changed(folder, ray_head, name, change) -> tuple[int, str]:
    """INTERRUPTIBLE_SPEC run in `folder`; `change(db)` while the driver is paused mid-sweep."""
    (folder / "sweep.toml").write_text(INTERRUPTIBLE_SPEC.format(name=name))

    def paused_change(proc):
        os.kill(proc.pid, signal.SIGSTOP)
        try:
            change(folder / "mlflow.db")
        finally:
            os.kill(proc.pid, signal.SIGCONT)

    args = ["run", "sweep.toml", "--address", ray_head.address, *SYSTEM_METRICS]
    code, output, _ = interrupted_sweep(args, folder, ray_head.env, paused_change, folder / "mlflow.db", wait_s=600)
    return code, output


def _check_gone(rc, output, folder, name, why) -> None:
    """One line about the store, the count of lost writes, every trial finished in Tune without a retry."""
    assert rc == 1, output[-4000:]
    notices = [line for line in output.splitlines() if "its writes are no longer sent" in line]
    assert len(notices) == 1 and why in notices[0], output[-4000:]
    assert "Traceback" not in output and "MlflowException" not in output, output[-6000:]
    lost = [line for line in output.splitlines() if "write(s) were not recorded" in line]
    assert len(lost) == 1 and lost[0].startswith("tokensweep run: error: MLflow at "), output[-4000:]
    trials = tune.ExperimentAnalysis(str(folder / "ray_results" / name)).trials
    assert sorted((t.status, t.num_failures) for t in trials) == [("TERMINATED", 0)] * len(INTERRUPTIBLE_TRIALS)


def _check_recorded(db, name) -> None:
    parents, children = sweep_runs(db, name)
    assert [p.info.status for p in parents] == ["FINISHED"], [(p.info.run_id, p.info.status) for p in parents]
    assert sorted(c.info.run_name for c in children) == INTERRUPTIBLE_TRIALS  # one run per trial
    for run in children:
        assert run.info.status == "FINISHED", run.info.run_name
        epochs = int(run.data.params["epochs"])
        assert metric_steps(db, run.info.run_id, "top1") == list(range(1, epochs + 1)), run.info.run_name  # each once


def test_a_store_deleted_mid_sweep_is_said_once_and_resume_records_every_trial_in_a_new_one(tmp_path, ray_head):
    def delete(db):
        for path in (db, db.with_name("mlflow.db-journal")):
            path.unlink(missing_ok=True)

    rc, output = _sweep_with_store_changed(tmp_path, ray_head, "deleted", delete)
    _check_gone(rc, output, tmp_path, "deleted", "was deleted")

    for path in tmp_path.glob("mlflow.db*"):  # whatever MLflow's open connections made again: the user starts anew
        path.unlink()
    resumed = run_cli(["run", "sweep.toml", "--resume", "--address", ray_head.address], cwd=tmp_path, env=ray_head.env, timeout=600, check_rc=0)
    assert "Traceback" not in resumed.stdout + resumed.stderr, resumed.stderr[-4000:]
    _check_recorded(tmp_path / "mlflow.db", "deleted")


def test_a_store_replaced_mid_sweep_is_left_alone_and_resume_records_every_trial_in_the_restored_one(tmp_path, ray_head):
    other = tmp_path / "other.db"  # another project's store: an experiment with a finished run and its metrics
    client = MlflowClient(f"sqlite:///{other}")
    run = client.create_run(client.create_experiment("other"))
    client.log_metric(run.info.run_id, "top1", 50.0, step=1)
    client.set_terminated(run.info.run_id)
    with sqlite3.connect(other) as conn:
        other_rows = conn.execute("select count(*) from runs").fetchone()[0], conn.execute("select count(*) from metrics").fetchone()[0]

    def replace(db):
        shutil.copy(db, tmp_path / "backup.db")  # the driver is paused: the file is as its last commit left it
        if db.with_name("mlflow.db-journal").exists():
            shutil.copy(db.with_name("mlflow.db-journal"), tmp_path / "backup.db-journal")
        shutil.copy(other, tmp_path / "other-copy.db")
        os.replace(tmp_path / "other-copy.db", db)

    rc, output = _sweep_with_store_changed(tmp_path, ray_head, "replaced", replace)
    _check_gone(rc, output, tmp_path, "replaced", "was replaced")
    with sqlite3.connect(tmp_path / "mlflow.db") as conn:  # nothing of this sweep went into the other store
        assert (conn.execute("select count(*) from runs").fetchone()[0], conn.execute("select count(*) from metrics").fetchone()[0]) == other_rows
        assert conn.execute("select count(*) from experiments where name = 'replaced'").fetchone()[0] == 0

    for path in tmp_path.glob("mlflow.db*"):
        path.unlink()
    for path in tmp_path.glob("backup.db*"):  # the user restores the backup
        os.replace(path, tmp_path / path.name.replace("backup.db", "mlflow.db"))
    resumed = run_cli(["run", "sweep.toml", "--resume", "--address", ray_head.address], cwd=tmp_path, env=ray_head.env, timeout=600, check_rc=0)
    output = resumed.stdout + resumed.stderr
    assert "Traceback" not in output and "no parent run" not in output, output[-4000:]
    _check_recorded(tmp_path / "mlflow.db", "replaced")
