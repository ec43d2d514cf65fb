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

from rel_helpers import INTERRUPTIBLE_SPEC, INTERRUPTIBLE_TRIALS, interrupted_sweep
from helpers import run_cli
from sweep_helpers import metric_steps, sweep_runs

pytestmark = pytest.mark.slow


def test_a_sweep_moved_to_another_folder_resumes_under_its_one_parent(tmp_path, ray_head):
    before, after = tmp_path / "project", tmp_path / "project-moved"
    before.mkdir()
    (before / "sweep.toml").write_text(INTERRUPTIBLE_SPEC.format(name="moved"))
    env = {**ray_head.env, "XDG_STATE_HOME": str(tmp_path / "state")}  # the driver's own record, outside the folder
    args = ["run", "sweep.toml", "--address", ray_head.address, "--quiet"]
    code, output, _ = interrupted_sweep(args, before, env, lambda proc: os.killpg(proc.pid, signal.SIGINT), before / "mlflow.db")
    assert code == 130, output[-4000:]
    (quick,) = [c for c in sweep_runs(before / "mlflow.db", "moved")[1] if c.info.run_name == "quick"]
    assert quick.info.status == "FINISHED"

    shutil.move(before, after)
    resumed = run_cli(args + ["--resume"], cwd=after, env=env, timeout=600, check_rc=0)
    output = resumed.stdout + resumed.stderr
    assert "no parent run" not in output and "Traceback" not in output, output[-4000:]

    parents, children = sweep_runs(after / "mlflow.db", "moved")
    assert [p.info.status for p in parents] == ["FINISHED"], [(p.info.run_id, p.info.status) for p in parents]
    assert parents[0].data.tags["tokensweep.tune_path"] == str(after / "ray_results" / "moved")  # where it is now
    assert sorted(c.info.run_name for c in children) == INTERRUPTIBLE_TRIALS  # one run per trial
    again = next(c for c in children if c.info.run_id == quick.info.run_id)
    assert (again.info.status, again.info.end_time) == ("FINISHED", quick.info.end_time)  # left alone
    for run in children:
        assert run.info.status == "FINISHED"
        assert metric_steps(after / "mlflow.db", run.info.run_id, "top1") == list(range(1, int(run.data.params["epochs"]) + 1))

    run_cli(["export", "moved", "--out", "runs.parquet"], cwd=after, env=env, check_rc=0)
    assert sorted(pq.read_table(after / "runs.parquet").column("run_name").to_pylist()) == INTERRUPTIBLE_TRIALS
