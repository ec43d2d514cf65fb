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
from ray import tune

from rel_helpers import start_cli, stop_process_group, wait_for
from helpers import run_cli
from sweep_helpers import metric_steps, poll_db, sweep_runs

pytestmark = pytest.mark.slow

SPEC = """
[sweep]
name = "{name}"

[trial]
model = "vit_tiny_patch"
dataset = "tiny"
tiny_val_per_class = 5
batch_size = 32
warmup_epochs = 0.0
bench_batch = 8
bench_steps = 1
workers = 0
epochs = 3
tiny_train_per_class = 200    # seconds per epoch: still running when the first trial has finished

[[variants]]
name = "quick"
epochs = 1
tiny_train_per_class = 20

[[variants]]
name = "slow-a"

[[variants]]
name = "slow-b"
seed = 1

[resources]
cpus = 1
gpus = 0

[tracking]
system_metrics = true             # each trial's worker writes to the store too
system_metrics_interval_s = 1.0

[bench]
enabled = false
"""

NAMES = ["quick", "slow-a", "slow-b"]


def _finished(db) -> list[str]:
    rows = poll_db(db, "select r.name from runs r join tags t on t.run_uuid = r.run_uuid "
                       "where t.key = 'tokensweep.role' and t.value = 'trial' and r.status = 'FINISHED'")  # fmt: skip
    return [name for (name,) in rows]


def _sweep_with_store_changed(folder, env, name, change) -> tuple[int, str]:
    """SPEC run in `folder`; `change(db)` while the driver is paused after the first finished trial."""
    (folder / "sweep.toml").write_text(SPEC.format(name=name))
    db = folder / "mlflow.db"
    proc, log = start_cli(["run", "sweep.toml", "--num-cpus", "2"], folder, env)
    try:
        wait_for(lambda: _finished(db) == ["quick"], 400, "the first finished trial", alive=lambda: proc.poll() is None)
        os.kill(proc.pid, signal.SIGSTOP)
        try:
            change(db)
        finally:
            os.kill(proc.pid, signal.SIGCONT)
        proc.wait(timeout=600)
    finally:
        stop_process_group(proc)
    return proc.returncode, log.read_text()


def _check_gone(rc, output, folder, name, why) -> None:
    """One line about the store, the count of lost writes, every trial finished in Tune without a retry."""
    assert rc == 1, output[-4000:]
    notices = [line for line in output.splitlines() if "its writes are no longer sent" in line]
    assert len(notices) == 1 and why in notices[0], output[-4000:]
    assert "Traceback" not in output and "MlflowException" not in output, output[-6000:]
    lost = [line for line in output.splitlines() if "write(s) were not recorded" in line]
    assert len(lost) == 1 and lost[0].startswith("tokensweep run: error: MLflow at "), output[-4000:]
    trials = tune.ExperimentAnalysis(str(folder / "ray_results" / name)).trials
    assert sorted((t.status, t.num_failures) for t in trials) == [("TERMINATED", 0)] * len(NAMES)


def _check_recorded(db, name) -> None:
    parents, children = sweep_runs(db, name)
    assert [p.info.status for p in parents] == ["FINISHED"], [(p.info.run_id, p.info.status) for p in parents]
    assert sorted(c.info.run_name for c in children) == NAMES  # one run per trial
    for run in children:
        assert run.info.status == "FINISHED", run.info.run_name
        epochs = int(run.data.params["epochs"])
        assert metric_steps(db, run.info.run_id, "top1") == list(range(1, epochs + 1)), run.info.run_name  # each once


def test_a_store_deleted_mid_sweep_is_said_once_and_resume_records_every_trial_in_a_new_one(tmp_path, ray_token_env):
    def delete(db):
        for path in (db, db.with_name("mlflow.db-journal")):
            path.unlink(missing_ok=True)

    rc, output = _sweep_with_store_changed(tmp_path, ray_token_env, "deleted", delete)
    _check_gone(rc, output, tmp_path, "deleted", "was deleted")

    for path in tmp_path.glob("mlflow.db*"):  # whatever MLflow's open connections made again: the user starts anew
        path.unlink()
    resumed = run_cli(["run", "sweep.toml", "--resume", "--num-cpus", "2"], cwd=tmp_path, env=ray_token_env, timeout=600, check_rc=0)
    assert "Traceback" not in resumed.stdout + resumed.stderr, resumed.stderr[-4000:]
    _check_recorded(tmp_path / "mlflow.db", "deleted")


def test_a_store_replaced_mid_sweep_is_left_alone_and_resume_records_every_trial_in_the_restored_one(tmp_path, ray_token_env):
    other = tmp_path / "other"
    other.mkdir()
    (other / "sweep.toml").write_text(SPEC.format(name="other"))
    shrink = ["--set", "trial.epochs=1", "--set", "trial.tiny_train_per_class=20", "--set", "tracking.system_metrics=false"]
    run_cli(["run", "sweep.toml", "--num-cpus", "2", "-q", *shrink], cwd=other, env=ray_token_env, timeout=600, check_rc=0)
    with sqlite3.connect(other / "mlflow.db") as conn:
        other_rows = conn.execute("select count(*) from runs").fetchone()[0], conn.execute("select count(*) from metrics").fetchone()[0]

    def replace(db):
        shutil.copy(db, tmp_path / "backup.db")  # the driver is paused: the file is as its last commit left it
        if db.with_name("mlflow.db-journal").exists():
            shutil.copy(db.with_name("mlflow.db-journal"), tmp_path / "backup.db-journal")
        shutil.copy(other / "mlflow.db", tmp_path / "other.db")
        os.replace(tmp_path / "other.db", db)

    rc, output = _sweep_with_store_changed(tmp_path, ray_token_env, "replaced", replace)
    _check_gone(rc, output, tmp_path, "replaced", "was replaced")
    with sqlite3.connect(tmp_path / "mlflow.db") as conn:  # nothing of this sweep went into the other store
        assert (conn.execute("select count(*) from runs").fetchone()[0], conn.execute("select count(*) from metrics").fetchone()[0]) == other_rows
        assert conn.execute("select count(*) from experiments where name = 'replaced'").fetchone()[0] == 0

    for path in tmp_path.glob("mlflow.db*"):
        path.unlink()
    for path in tmp_path.glob("backup.db*"):  # the user restores the backup
        os.replace(path, tmp_path / path.name.replace("backup.db", "mlflow.db"))
    resumed = run_cli(["run", "sweep.toml", "--resume", "--num-cpus", "2"], cwd=tmp_path, env=ray_token_env, timeout=600, check_rc=0)
    output = resumed.stdout + resumed.stderr
    assert "Traceback" not in output and "no parent run" not in output, output[-4000:]
    _check_recorded(tmp_path / "mlflow.db", "replaced")
