"""End to end on real Ray and real MLflow: smoke sweep, kill + resume, Optuna, two nodes (`ray job submit`:
tests/e2e/test_documented_commands_run.py, as docs/sweeps.md shows it).

Each test runs `tokensweep run` as a separate process (as a user would). The tests that need a
running cluster share one Ray head (`ray_head`, session scope); the smoke test starts its own local
Ray, which is what `tokensweep run platform/sweeps/smoke.toml` does.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import BIN, CLI, REPO, SUPPORT, SWEEPS, run_cli
from sweep_helpers import check_child_schema, metric_steps, sweep_runs, trial_statuses

SMOKE = SWEEPS / "smoke.toml"
# The smoke sweep at the least size that shows platform behaviour: 2 training steps per epoch on a small generated
# set, no bench stage, no system metrics; a test sets back what it checks.
SMALL = ["--set", "trial.max_steps_per_epoch=2", "--set", "trial.tiny_train_per_class=16", "--set", "trial.tiny_val_per_class=8",
         "--set", "bench.enabled=false", "--set", "tracking.system_metrics=false"]  # fmt: skip


def _report_time(stdout: str, label: str) -> None:
    m = re.search(r"^time: .*$", stdout, re.M)
    print(f"\n[{label}] {m[0] if m else 'no timing line'}")


def repo_head() -> str | None:
    proc = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=30)
    return proc.stdout.strip() if proc.returncode == 0 else None


def test_smoke_sweep_end_to_end_on_local_ray(tmp_path, ray_token_env):
    started = time.perf_counter()
    # system metrics sampled often enough that trials of a few seconds hold some
    args = ["run", SMOKE, "--num-cpus", "2", "--set", "trial.epochs=2", *SMALL, "--set", "tracking.system_metrics=true",
            "--set", "tracking.system_metrics_interval_s=0.5"]  # fmt: skip
    proc = run_cli(args, cwd=tmp_path, env=ray_token_env, timeout=600, check_rc=0)
    wall = time.perf_counter() - started
    _report_time(proc.stdout, f"smoke, local Ray, wall {wall:.1f}s")
    # the default view: a line per trial event and the summary, none of Ray's or Tune's own output
    printed = (proc.stdout + proc.stderr).splitlines()
    assert len(printed) < 60, "\n".join(printed)
    for line in ("finished  vit_tiny_patch  epoch 2/2", "finished  vit_tiny_supertoken-cluster_iters=3"):
        assert any(line in p for p in printed), line
    for chatter in ("_platform/", "TensorBoard", "Trial status", "pid=", "INFO mlflow", "View detailed results"):
        assert not any(chatter in p for p in printed), chatter
    db = tmp_path / "mlflow.db"
    parents, children = sweep_runs(db, "smoke")
    assert len(parents) == 1
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    tags = parent.data.tags
    assert tags["tokensweep.search"] == "grid" and tags["tokensweep.command"].startswith("tokensweep run ")
    head = repo_head()  # the checkout the sweep's code ran from; None outside a git checkout
    if head:
        assert tags["mlflow.source.git.commit"] == head and tags["tokensweep.git_commit"] in (head, f"{head}-dirty")
    else:
        assert "mlflow.source.git.commit" not in tags and "tokensweep.git_commit" not in tags
    assert len(children) >= 4
    assert {c.data.params["embedding"] for c in children} == {"patch", "conv", "supertoken"}
    for child in children:
        assert child.info.status == "FINISHED"
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert child.info.run_name == child.data.tags.get("mlflow.runName")
        # what MLflow's UI shows in Source and Dataset (test_mlflow_ui_browser.py looks at the page itself)
        assert child.data.tags["mlflow.source.name"] == str(SMOKE) and child.data.tags["mlflow.source.type"] == "LOCAL"
        (data,) = child.inputs.dataset_inputs
        assert data.dataset.name == "tiny" and data.dataset.digest == child.data.tags["dataset_digest"]
        check_child_schema(child, db)
    assert len({c.data.tags["trial_id"] for c in children}) == len(children)
    # MLflow system metrics, sampled inside the trials
    assert any(k.startswith("system/cpu_utilization") for c in children for k in c.data.metrics)
    assert (tmp_path / "ray_results" / "smoke").is_dir()
    # trials reuse their Ray actor: 4 one-CPU trials on 2 CPUs run in at most 2 worker processes, not 4
    from ray import tune

    pids = {t.last_result["pid"] for t in tune.ExperimentAnalysis(str(tmp_path / "ray_results" / "smoke")).trials}
    assert 1 <= len(pids) <= 2, pids
    assert "compare runs: mlflow ui --backend-store-uri sqlite:///" in proc.stdout
    # a successful sweep's output holds no traceback: not from Ray's SIGTERM handler in workers Tune shuts down
    for words in ("Traceback", "Exception ignored", "SystemExit", "Stack trace"):
        assert words not in proc.stdout + proc.stderr, (words, proc.stdout[-3000:], proc.stderr[-3000:])
    # the same sweep again needs --resume or --fresh: one line, exit 2, nothing new in MLflow
    again = run_cli(["run", SMOKE], cwd=tmp_path, env=ray_token_env, timeout=120, check_rc=2)
    assert len(again.stderr.strip().splitlines()) == 1 and "--resume" in again.stderr
    assert len(sweep_runs(db, "smoke")[0]) == 1


def test_resume_after_driver_is_killed(tmp_path, ray_head):
    """SIGKILL the driver mid-sweep, then --resume: one run per trial, finished trials not re-run.

    The driver is killed the moment MLflow shows a trial FINISHED, with Tune snapshotting its state
    rarely (TUNE_GLOBAL_CHECKPOINT_S=600, and enough checkpoints kept that none forces a snapshot): Tune's
    saved state does not know the trial ended, however the machine's load falls. The resumed sweep must
    leave that trial alone anyway: not trained again, its run not set RUNNING, its end time unmoved.
    """
    env = {**ray_head.env, "TUNE_GLOBAL_CHECKPOINT_S": "600"}
    db = tmp_path / "mlflow.db"
    # 3 trials on 2 slots: the third starts as the first ends; 2 epochs, so a trial killed after its first resumes
    args = ["run", SMOKE, "--address", ray_head.address, "--set", "trial.epochs=2", "--set", "failure.keep_checkpoints=10",
            "--set", "grid.cluster_iters=[1]", "--set", "trial.measure=false", *SMALL, "--quiet"]  # fmt: skip
    log = open(tmp_path / "first.log", "w")
    proc = subprocess.Popen(CLI + [str(a) for a in args], cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 300
        while time.time() < deadline:
            statuses = trial_statuses(db)
            if "FINISHED" in statuses and "RUNNING" in statuses:  # a trial just ended, another runs
                break
            assert proc.poll() is None, "sweep ended before it could be interrupted:\n" + Path(log.name).read_text()[-4000:]
            time.sleep(0.1)
        else:
            pytest.fail("sweep never reached a finished + a running trial")
        os.kill(proc.pid, signal.SIGKILL)  # the driver we started; its trial actors die with it
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    lock_left = (tmp_path / "ray_results" / ".smoke.lock").exists()  # a killed driver cannot release its lock ...

    _, before = sweep_runs(db, "smoke")
    finished_before = {c.data.tags["trial_id"]: c for c in before if c.info.status == "FINISHED"}
    assert finished_before and any(c.info.status == "RUNNING" for c in before)

    resumed = run_cli(args + ["--resume"], cwd=tmp_path, env=env, timeout=600, check_rc=0)
    _report_time(resumed.stdout, "resume")
    parents, children = sweep_runs(db, "smoke")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert parents[0].data.tags["tokensweep.resumes"] == "1"
    trial_ids = [c.data.tags["trial_id"] for c in children]
    assert len(trial_ids) == len(set(trial_ids)) == 3, trial_ids  # never a second run for a trial
    assert {c.info.run_id for c in children} >= {c.info.run_id for c in before}
    for child in children:
        assert child.info.status == "FINISHED"
        steps = metric_steps(db, child.info.run_id, "top1")
        assert set(steps) == {1, 2}
        if child.data.tags["trial_id"] in finished_before:
            assert steps == [1, 2]  # not trained again
            assert child.info.end_time == finished_before[child.data.tags["trial_id"]].info.end_time
    assert lock_left and "taking over the lock of sweep 'smoke' from pid" in resumed.stderr  # ... nor block --resume
    assert not (tmp_path / "ray_results" / ".smoke.lock").exists()
    # --resume of a sweep that does not exist: one line, exit 2
    missing = run_cli(["run", SMOKE, "--set", "sweep.name=never-ran", "--resume", "--address", ray_head.address], cwd=tmp_path, env=env, timeout=120, check_rc=2)
    assert missing.stderr.strip().splitlines() == [
        f"tokensweep run: error: --resume: no sweep named 'never-ran' in {tmp_path / 'ray_results'} (nothing to resume; run without --resume)"
    ]


# 2 epochs: the objectives are only in the last of several reports (Tune's strict metric check); 2 steps each on a
# small training set; the whole validation set (top-1 in steps of 1/500: ties between samples stay unlikely); a small
# bench, whose figure Optuna scores
OPTUNA_SMALL = ["--set", "trial.epochs=2", "--set", "trial.max_steps_per_epoch=2", "--set", "trial.tiny_train_per_class=16",
                "--set", "tracking.system_metrics=false", "--set", "bench.repeats=3", "--set", "bench.steps=3"]  # fmt: skip


def test_optuna_channels_search_with_tiny_budget(tmp_path, ray_head):
    # the shipped spec shrunk (--smoke: tiny data and backbone, 3 trials, 1 CPU; OPTUNA_SMALL); its front confirmed
    # with seed 1 (seed 0 is the search's own)
    args = ["run", SWEEPS / "channels-optuna.toml", "--smoke", *OPTUNA_SMALL, "--address", ray_head.address,
            "--set", "search.confirm_seeds=[0, 1]", "--quiet"]  # fmt: skip
    proc = run_cli(args, cwd=tmp_path, env=ray_head.env, timeout=600, check_rc=0)
    _report_time(proc.stdout, "optuna")

    import optuna

    study = optuna.load_study(study_name="channels-optuna", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == 3
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MAXIMIZE"]
    assert study.best_trials  # the Pareto set of (top1, images_per_sec)
    assert all(len(t.values) == 2 and t.values[1] > 0 for t in complete)

    db = tmp_path / "mlflow.db"
    parents, runs = sweep_runs(db, "channels-optuna")
    assert len(parents) == 1 and parents[0].data.tags["tokensweep.search"] == "optuna"
    children = [c for c in runs if "optuna_trial_number" in c.data.params]
    confirmations = [c for c in runs if "optuna_trial_number" not in c.data.params]
    assert len(children) == 3
    # the confirmation: every configuration of Optuna's own Pareto set once more, with seed 1, same config_id
    config_of = {int(c.data.params["optuna_trial_number"]): c.data.tags["tokensweep.config_id"] for c in children}
    front = {config_of[t.number] for t in study.best_trials}
    assert sorted(c.data.tags["tokensweep.config_id"] for c in confirmations) == sorted(front)
    for c in confirmations:
        assert c.info.status == "FINISHED" and c.data.params["seed"] == "1" and c.info.run_name.startswith("confirm-t")
        assert c.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
    assert parents[0].data.tags["tokensweep.bench_status"] == "finished"
    assert all("bench_images_per_sec" in c.data.metrics for c in runs)
    numbers = sorted(int(c.data.params["optuna_trial_number"]) for c in children)
    assert numbers == sorted(t.number for t in complete)
    by_number = {t.number: t for t in complete}
    for child in children:
        check_child_schema(child, db)
        trial = by_number[int(child.data.params["optuna_trial_number"])]
        widths = [trial.params[f"channels[{i}]"] for i in range(6)]
        assert child.data.params["channels"] == ",".join(map(str, widths))
        assert child.data.metrics["top1"] == pytest.approx(trial.values[0])
        # Optuna scored the architecture benched alone; the in-trial figure stays beside it
        assert child.data.metrics["search_images_per_sec"] == pytest.approx(trial.values[1])
        assert child.data.tags["throughput_source"] == "search_images_per_sec" and child.data.metrics["images_per_sec"] > 0
        # Optuna's trial links back to its MLflow run, with the trial's configuration
        assert trial.user_attrs["mlflow_run_id"] == child.info.run_id
        assert trial.user_attrs["trial_name"] == child.info.run_name
        config = trial.user_attrs["config"]
        assert {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in config.items()} == {
            k: v for k, v in child.data.params.items() if k != "optuna_trial_number"
        }
    assert study.metric_names == ["top1", "images_per_sec"]
    _check_optuna_dashboard(tmp_path / "optuna.db", {c.info.run_id for c in children})


def test_optuna_and_the_dashboard_agree_on_the_front(tmp_path, ray_head):
    """Trials sharing this machine's cores: Optuna's Pareto trials are the dashboard's, each scored on
    the figure the dashboard plots (the architecture benched alone), not on its in-trial one."""
    args = ["run", SWEEPS / "channels-optuna.toml", "--smoke", *OPTUNA_SMALL, "--address", ray_head.address, "--quiet"]
    run_cli(args, cwd=tmp_path, env=ray_head.env, timeout=600, check_rc=0)
    run_cli(["dashboard", "channels-optuna", "--out", tmp_path / "dash"], cwd=tmp_path, env=ray_head.env, timeout=300, check_rc=0)

    import optuna

    study = optuna.load_study(study_name="channels-optuna", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    assert study.user_attrs["throughput"].startswith("images_per_sec: each architecture benched alone")
    pareto = json.loads((tmp_path / "dash" / "pareto.json").read_text())
    assert pareto["x_figure"] == "search_images_per_sec" and pareto["runs"] == 3
    assert {p["run_id"] for p in pareto["front"]} == {t.user_attrs["mlflow_run_id"] for t in study.best_trials}
    told = {t.user_attrs["mlflow_run_id"]: t.values for t in study.trials}
    for point in pareto["front"]:
        assert (point["y"], point["x"]) == pytest.approx(told[point["run_id"]])


def _check_optuna_dashboard(db: Path, run_ids: set) -> None:
    """The real optuna-dashboard over the study, through its HTTP API: named objectives, linked trials."""
    import json
    import urllib.request

    from sweep_helpers import free_port

    port = free_port()
    log = open(db.parent / "optuna-dashboard.log", "w")
    server = subprocess.Popen([str(BIN / "optuna-dashboard"), f"sqlite:///{db}", "--host", "127.0.0.1", "--port", str(port)],
                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip

    def get(path):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
            return json.load(r)

    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                studies = get("/api/studies")["study_summaries"]
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, (db.parent / "optuna-dashboard.log").read_text()
                time.sleep(0.5)
        (study,) = [s for s in studies if s["study_name"] == "channels-optuna"]
        detail = get(f"/api/studies/{study['study_id']}")
        assert detail["objective_names"] == ["top1", "images_per_sec"]
        linked = {a["value"] for t in detail["trials"] for a in t["user_attrs"] if a["key"] == "mlflow_run_id"}
        assert linked == run_ids
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        log.close()


def test_trials_spread_over_two_nodes(tmp_path, ray_token_env):
    helper = SUPPORT / "two_node_cluster.py"
    cluster = subprocess.Popen(
        [sys.executable, str(helper)], env=ray_token_env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=open(tmp_path / "cluster.log", "w"), text=True,
    )  # fmt: skip
    try:
        line = cluster.stdout.readline()
        assert line.startswith("ADDRESS "), (line, (tmp_path / "cluster.log").read_text()[-3000:])
        address = line.split()[1]
        args = ["run", SMOKE, "--address", address, "--set", "trial.epochs=2", "--set", "resources.cpus=1", *SMALL, "-v"]
        args += ["--set", "scheduler.type=asha", "--set", "scheduler.grace_period=1"]  # ASHA on a cluster
        proc = run_cli(args, cwd=tmp_path, env=ray_token_env, timeout=600, check_rc=0)
    finally:
        cluster.stdin.close()  # the helper shuts its two nodes down
        try:
            cluster.wait(timeout=90)
        except subprocess.TimeoutExpired:
            cluster.terminate()
            cluster.wait(timeout=30)
    assert "Trial status" in proc.stdout + proc.stderr  # -v: Tune's own tables
    _, children = sweep_runs(tmp_path / "mlflow.db", "smoke")
    assert len(children) >= 4 and all(c.info.status == "FINISHED" for c in children)
    nodes = {c.data.tags["ray_node_id"] for c in children}
    assert len(nodes) == 2, nodes
    for child in children:  # ASHA may stop a trial after epoch 1: then it says so
        stopped = child.data.tags.get("tokensweep.stopped_early") == "true"
        assert "images_per_sec" in child.data.metrics or stopped


def test_failed_trial_is_retried_then_recorded(tmp_path, ray_head):
    """A trial that raises: retried from its checkpoint (max_failures), then FAILED with its reason."""
    data = tmp_path / "broken-images"
    for split in ("train", "val"):
        for cls in ("a", "b"):
            (data / split / cls).mkdir(parents=True)
            (data / split / cls / "x.jpg").write_bytes(b"not a jpeg")
    spec = tmp_path / "broken.toml"
    spec.write_text(
        '[sweep]\nname = "broken"\n'
        '[trial]\nmodel = "vit_tiny_patch"\ndataset = "imagefolder"\nbatch_size = 2\nepochs = 1\nworkers = 0\n'
        'warmup_epochs = 0.0\n[failure]\nmax_failures = 1\n[tracking]\nsystem_metrics = false\n'
    )
    proc = run_cli(["run", spec, "--data-dir", data, "--address", ray_head.address], cwd=tmp_path, env=ray_head.env, timeout=300, check_rc=1)
    assert "1 failed" in proc.stdout
    # the default view says why, once per retry and once at the end
    assert re.search(r"retrying  \S+ after epoch 0/1 \(failure 1\): BadImageError: cannot read image", proc.stdout), proc.stdout
    assert re.search(r"failed    \S+  epoch 0/1  BadImageError: cannot read image", proc.stdout), proc.stdout
    parents, children = sweep_runs(tmp_path / "mlflow.db", "broken")
    assert parents[0].info.status == "FAILED" and parents[0].data.tags["tokensweep.failed_trials"] == "1"
    (child,) = children
    assert child.info.status == "FAILED"
    assert child.data.tags["failure_reason"].startswith("BadImageError: cannot read image"), child.data.tags
    assert child.data.tags["tokensweep.retries"] == "1"
