"""Every shell command the docs show runs as HOW (tests/support/documented.py) says: as written, as a
server until it answers, or as its variant."""

import os
import shutil
import time

import pytest
from documented import HOW, NOT_HERE, REPO, SERVE, VARIANT, listening_ips, run_one, work_folder
from helpers import BIN
from sweep_helpers import RayHead, check_child_schema, sweep_runs


@pytest.mark.timeout(1800)  # ~35 commands, 5 of them one-epoch sweeps and 3 few-step trials: minutes, more under load
def test_documented_commands_run(tmp_path, ray_token_env):
    from concurrent.futures import ThreadPoolExecutor

    work = work_folder(tmp_path / "checkout")
    work_folder(work / "job")
    env = {**ray_token_env, "PATH": f"{BIN}{os.pathsep}{ray_token_env['PATH']}", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    head = RayHead(env, documented=True)  # docs/sweeps.md's head: the venv on PATH, token auth, single-machine mode
    failures, timings = [], []

    def timed(i: int, command: str, kind: str) -> None:
        started = time.perf_counter()
        problem = run_one(command, kind, work, env, tmp_path / f"server-{i}.log")
        timings.append((time.perf_counter() - started, command))
        if problem:
            failures.append(f"{command}\n  -> {problem}")

    try:
        ips = listening_ips(head.proc.pid)
        if ips - {"127.0.0.1", "::ffff:127.0.0.1"}:
            failures.append(f"the documented head listens beyond loopback: {sorted(ips)}")
        env = {**env, "RAY_ADDRESS": head.address, "HEAD_DASHBOARD": head.dashboard, "REPO": str(REPO)}
        todo = [(i, detail if kind == VARIANT or (kind == SERVE and detail) else command, kind)
                for i, (command, (kind, detail)) in enumerate(HOW.items()) if kind != NOT_HERE]  # fmt: skip
        for i, command, kind in todo:  # in order: later commands use what earlier ones wrote
            if kind != SERVE:
                timed(i, command, kind)
        servers = [job for job in todo if job[2] == SERVE]  # last, side by side: they only read what the rest wrote
        with ThreadPoolExecutor(len(servers)) as pool:
            list(pool.map(lambda job: timed(*job), servers))
    finally:
        head.stop()
    print(f"\ndocumented commands: {sum(t for t, _ in timings):.0f} s in all; the slowest:")
    for seconds, what in sorted(timings, reverse=True)[:10]:
        print(f"{seconds:6.1f}s  {what}")
    assert not failures, "\n\n".join(failures)
    # what the commands were for is there
    assert (work / "bench.csv").read_text().count("\n") == 4  # header + 3 models
    assert (work / "runs.parquet").is_file() and (work / "dashboard" / "smoke" / "pareto.html").is_file()
    assert (work / "epochs.jsonl").read_text().count("\n") >= 2 and (work / "data" / "tiny" / "train").is_dir()
    assert (work / "optuna.db").is_file()
    # the sweep `ray job submit` ran on the head, recorded whole in the job's own store
    parents, children = sweep_runs(work / "job" / "mlflow.db", "smoke")
    assert [p.info.status for p in parents] == ["FINISHED"] and len(children) == 4
    for child in children:
        assert child.info.status == "FINISHED"
        check_child_schema(child, work / "job" / "mlflow.db")
    assert (work / ".env").is_file()
    shutil.rmtree(work / "ray_results", ignore_errors=True)
