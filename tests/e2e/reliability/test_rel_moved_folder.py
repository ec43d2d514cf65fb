"""A sweep's project folder moved between an interrupted run and its --resume.

The folder holds the spec, Tune's state (./ray_results) and the MLflow store (./mlflow.db). Ctrl-C after the
first finished trial, `mv` the folder, `--resume` from the new place: the sweep continues under its one parent
run (found by the sweep id in its Tune folder, not by the folder's path), one run per trial, the finished
trial's run untouched, and the export has every trial. (Artifacts still go where the experiment was created:
MLflow keeps its artifact location as an absolute path; docs/reliability.md says so.)
"""

import os
import shutil
import signal

import pyarrow.parquet as pq
import pytest

from rel_helpers import TINY_TRIAL, start_cli, stop_process_group, wait_for
from helpers import run_cli
from sweep_helpers import metric_steps, poll_db, sweep_runs

pytestmark = pytest.mark.slow

SPEC = """
[sweep]
name = "moved"

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
system_metrics = false

[bench]
enabled = false
"""


def _finished(db) -> list[str]:
    rows = poll_db(db, "select r.name from runs r join tags t on t.run_uuid = r.run_uuid "
                       "where t.key = 'tokensweep.role' and t.value = 'trial' and r.status = 'FINISHED'")  # fmt: skip
    return [name for (name,) in rows]


def test_a_sweep_moved_to_another_folder_resumes_under_its_one_parent(tmp_path, ray_token_env):
    before, after = tmp_path / "project", tmp_path / "project-moved"
    before.mkdir()
    (before / "sweep.toml").write_text(SPEC)
    env = {**ray_token_env, "XDG_STATE_HOME": str(tmp_path / "state")}  # the driver's own record, outside the folder
    proc, log = start_cli(["run", "sweep.toml", "--num-cpus", "2", "--quiet"], before, env)
    try:
        wait_for(lambda: _finished(before / "mlflow.db") == ["quick"], 400, "the first finished trial",
                 alive=lambda: proc.poll() is None)  # fmt: skip
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=60)
    finally:
        stop_process_group(proc)
    assert proc.returncode == 130, log.read_text()[-4000:]
    (quick,) = [c for c in sweep_runs(before / "mlflow.db", "moved")[1] if c.info.status == "FINISHED"]

    shutil.move(before, after)
    resumed = run_cli(["run", "sweep.toml", "--resume", "--num-cpus", "2", "--quiet"], cwd=after, env=env, timeout=600, check_rc=0)
    output = resumed.stdout + resumed.stderr
    assert "no parent run" not in output and "Traceback" not in output, output[-4000:]

    parents, children = sweep_runs(after / "mlflow.db", "moved")
    assert [p.info.status for p in parents] == ["FINISHED"], [(p.info.run_id, p.info.status) for p in parents]
    assert parents[0].data.tags["tokensweep.tune_path"] == str(after / "ray_results" / "moved")  # where it is now
    assert sorted(c.info.run_name for c in children) == ["quick", "slow-a", "slow-b"]  # one run per trial
    again = next(c for c in children if c.info.run_id == quick.info.run_id)
    assert (again.info.status, again.info.end_time) == ("FINISHED", quick.info.end_time)  # left alone
    for run in children:
        assert run.info.status == "FINISHED"
        assert metric_steps(after / "mlflow.db", run.info.run_id, "top1") == list(range(1, int(run.data.params["epochs"]) + 1))

    run_cli(["export", "moved", "--out", "runs.parquet"], cwd=after, env=env, check_rc=0)
    assert sorted(pq.read_table(after / "runs.parquet").column("run_name").to_pylist()) == ["quick", "slow-a", "slow-b"]
