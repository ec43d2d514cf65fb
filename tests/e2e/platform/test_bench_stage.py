"""The bench stage end to end on real Ray and MLflow: the smoke sweep's driver killed while it benches,
`--resume` finishing only the bench, then `tokensweep bench --sweep` adding a second bench beside it.

The figures of so short a bench mean nothing; what is checked is what the sweep records.
"""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from helpers import CLI, run_cli, SWEEPS
from sweep_helpers import metric_steps, poll_db, sweep_runs

SMOKE = SWEEPS / "smoke.toml"
# the four architectures trained just enough to be recorded: the bench is what is checked
SHORT_TRAINING = [f"--set={key}" for key in ("trial.epochs=1", "trial.max_steps_per_epoch=3", "trial.tiny_train_per_class=10",
                                             "trial.tiny_val_per_class=4", "tracking.system_metrics=false")]  # fmt: skip
SMALL_BENCH = ["--set", "bench.repeats=3", "--set", "bench.steps=3"]
BENCH_METRICS = ("bench_images_per_sec", "bench_images_per_sec_ci_low", "bench_images_per_sec_ci_high")


def parent_tag(db: Path, key: str) -> str | None:
    rows = poll_db(db, "select t.value from tags t join tags r on r.run_uuid = t.run_uuid "
                       "where r.key = 'tokensweep.role' and r.value = 'sweep' and t.key = ?", (key,))  # fmt: skip
    return rows[0][0] if rows else None


def artifact(parent, path: str, db: Path) -> dict:
    from mlflow.tracking import MlflowClient

    local = MlflowClient(f"sqlite:///{db}").download_artifacts(parent.info.run_id, path, str(db.parent / "dl"))
    return json.loads(Path(local).read_text())


def artifact_names(parent, db: Path) -> set[str]:
    from mlflow.tracking import MlflowClient

    return {Path(f.path).name for f in MlflowClient(f"sqlite:///{db}").list_artifacts(parent.info.run_id, "bench")}


def start_and_kill_while_benching(args: list, tmp_path: Path, env: dict) -> None:
    """The sweep with a bench far too long to finish, its driver SIGKILLed once the bench measures."""
    db = tmp_path / "mlflow.db"
    long_bench = ["--set", "bench.repeats=1000", "--set", "bench.steps=30"]
    log = open(tmp_path / "first.log", "w")
    proc = subprocess.Popen(CLI + [str(a) for a in args + long_bench], cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 400
        while parent_tag(db, "tokensweep.bench_status") != "measuring":
            assert proc.poll() is None, "the sweep ended before its bench:\n" + Path(log.name).read_text()[-4000:]
            assert time.time() < deadline, "the bench never started"
            time.sleep(0.3)
        os.kill(proc.pid, signal.SIGKILL)  # the driver we started; Ray ends its bench task with it
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()


def test_bench_stage_killed_resumed_and_benched_again(tmp_path, ray_head):
    env, db = ray_head.env, tmp_path / "mlflow.db"
    args = ["run", SMOKE, "--address", ray_head.address, *SHORT_TRAINING, "--quiet"]
    start_and_kill_while_benching(args, tmp_path, env)

    parents, before = sweep_runs(db, "smoke")
    assert len(before) == 4 and all(c.info.status == "FINISHED" for c in before)  # training ended before the bench
    assert not any(m in c.data.metrics for c in before for m in BENCH_METRICS)
    stage_id = parents[0].data.tags["tokensweep.bench_stage"]
    ended = {c.info.run_id: c.info.end_time for c in before}
    refused = run_cli(["bench", "--sweep", "smoke"], cwd=tmp_path, env=env, timeout=120, check_rc=2)  # parent RUNNING
    assert len(refused.stderr.strip().splitlines()) == 1 and "the sweep is running" in refused.stderr

    # --resume after the training trials finished: only the bench runs (the same bench_id, not a second one)
    resumed = run_cli(args + SMALL_BENCH + ["--resume"], cwd=tmp_path, env=env, timeout=600, check_rc=0)
    parents, children = sweep_runs(db, "smoke")
    parent = parents[0]
    tags = parent.data.tags
    assert parent.info.status == "FINISHED" and tags["tokensweep.resumes"] == "1"
    assert tags["tokensweep.bench_status"] == "finished" and "tokensweep.bench_failure" not in tags
    assert tags["tokensweep.bench_stage"] == stage_id and tags["tokensweep.benches"] == "1"
    assert {c.info.run_id for c in children} == set(ended)  # no trial run again, no new run
    table = artifact(parent, f"bench/{stage_id}.json", db)
    assert table["repeats"] == 3 and table["steps"] == 3 and len(table["rows"]) == 4  # the resumed session's settings
    arch_of_row = {r["arch_id"]: r for r in table["rows"]}
    for child in children:
        assert child.info.end_time == ended[child.info.run_id]  # the training results untouched
        assert metric_steps(db, child.info.run_id, "top1") == [1]
        row = arch_of_row[child.data.tags["tokensweep.arch_id"]]
        m = child.data.metrics
        assert m["bench_images_per_sec"] == pytest.approx(row["images_per_sec"])
        assert m["bench_images_per_sec_ci_low"] <= m["bench_images_per_sec"] <= m["bench_images_per_sec_ci_high"]
        assert child.data.tags["bench_id"] == stage_id and child.data.tags["bench_device"].startswith("cpu")
        assert metric_steps(db, child.info.run_id, "bench_images_per_sec") == [1]
        assert m["concurrent_trials"] in (0, 1)  # 2 CPUs, 1 per trial: at most one other trial at once beside it
    assert sum(c.data.metrics["concurrent_trials"] for c in children) >= 1  # 4 trials, 2 at a time
    assert artifact_names(parent, db) == {"architectures.json", f"{stage_id}.csv", f"{stage_id}.json"}
    assert f"bench {stage_id}: 4 architecture(s) alone on cpu" in resumed.stdout
    assert "differences (resolved: the 95% interval of the difference excludes 0" in resumed.stdout and "benched alone (images/s), 3 repeats" in resumed.stdout

    # later, on demand: a second bench beside the first, never over it
    again = run_cli(["bench", "--sweep", "smoke", "--repeats", "3", "--steps", "3"], cwd=tmp_path, env=env, timeout=300, check_rc=0)
    second_id = again.stdout.split()[1]
    assert second_id.startswith("2-") and second_id != stage_id
    parents, children = sweep_runs(db, "smoke")
    assert parents[0].data.tags["tokensweep.benches"] == "2" and parents[0].data.tags["tokensweep.bench_stage"] == stage_id
    assert artifact(parents[0], f"bench/{stage_id}.json", db) == table  # the first table as it was
    assert {f"{second_id}.csv", f"{second_id}.json"} < artifact_names(parents[0], db)
    second = artifact(parents[0], f"bench/{second_id}.json", db)
    assert second["source"] == "tokensweep bench --sweep" and {r["arch_id"] for r in second["rows"]} == set(arch_of_row)
    for child in children:
        assert child.data.tags["bench_id"] == second_id
        assert json.loads(child.data.tags["tokensweep.bench_steps"]) == {"1": stage_id, "2": second_id}
        for metric in BENCH_METRICS:
            assert metric_steps(db, child.info.run_id, metric) == [1, 2]
