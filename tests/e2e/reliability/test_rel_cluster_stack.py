"""The cluster path with its real parts: an MLflow server on PostgreSQL, Tune storage on S3, two Ray nodes.

Started by the test, on 127.0.0.1 only (tests/support/stack_fixtures.py, tests/support/two_node_cluster.py):
PostgreSQL (Debian's package) behind `mlflow server` whose artifacts go to S3 through the server
(`--artifacts-destination s3://...`), moto's S3 server reached as a user reaches MinIO or a local S3
(AWS_ENDPOINT_URL, a key pair and a region in the environment of the driver, the Ray nodes and the
MLflow server; nothing else), and two 1-CPU Ray nodes (`ray.cluster_utils.Cluster`).

The smoke sweep (4 one-CPU trials, so two run at a time, one per node) runs with
`--storage s3://BUCKET/ray_results --tracking-uri http://127.0.0.1:PORT`, and:
  1. once Tune's saved state in the bucket (what --resume starts from) holds a finished trial and a
     running one with a checkpoint, and MLflow shows that one has epochs to go, the driver is SIGKILLed;
  2. `--resume`: once a resumed trial logs a new epoch, the MLflow server is stopped, kept down until
     the sweep has gone on without it (a new checkpoint in the bucket, the driver saying the server is
     unreachable), then started again on the same port and database.
Then: one MLflow run per trial, each FINISHED with every epoch once, the parent FINISHED, the
interrupted trial continued from its checkpoint in S3 (not from epoch 1), and the data in PostgreSQL.
"""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from helpers import SUPPORT, SWEEPS, run_cli
from rel_helpers import MlflowServer, listening_sockets, sets, start_cli, stop_process_group, tree, wait_for


BUCKET = "tokensweep-sweeps"
EPOCHS = 5
SMOKE = SWEEPS / "smoke.toml"
# 200 images per class (smoke's default): epochs of a few seconds, so a trial is caught half-way; no bench
# stage: it runs after the trials, which the kill and the outage are about
OVERRIDES = [f"trial.epochs={EPOCHS}", "trial.tiny_val_per_class=20", "bench.enabled=false"]


def _mlflow(server):
    from mlflow.tracking import MlflowClient

    return MlflowClient(server.url)


def _children(server) -> list:
    """The sweep's trial runs, [] while the server or the experiment is not there."""
    try:
        client = _mlflow(server)
        exp = client.get_experiment_by_name("smoke")
        runs = client.search_runs([exp.experiment_id], max_results=100) if exp else []
    except Exception:
        return []
    return [r for r in runs if r.data.tags.get("tokensweep.role") == "trial"]


def _last_epoch(run) -> int:
    steps = [m.step for m in run.data._metric_objs if m.key == "top1"]
    return max(steps, default=0)


def _checkpoint_keys(s3, bucket: str) -> set[str]:
    return {k.rsplit("/", 1)[0] for k in s3.keys(bucket, "ray_results/smoke/") if "/checkpoint_" in k}


def _saved_trials(s3) -> dict:
    """trial_id -> (status, epoch of its latest checkpoint or 0) in Tune's experiment state in the bucket:
    what `--resume` starts from (Tune snapshots it every 2 s, so it may lag what MLflow shows)."""
    import pyarrow.fs
    from ray.tune import ExperimentAnalysis

    env = s3.env
    fs = pyarrow.fs.S3FileSystem(
        access_key=env["AWS_ACCESS_KEY_ID"], secret_key=env["AWS_SECRET_ACCESS_KEY"], region=env["AWS_DEFAULT_REGION"],
        endpoint_override=s3.url,
    )  # fmt: skip
    try:
        trials = ExperimentAnalysis(f"{BUCKET}/ray_results/smoke", storage_filesystem=fs).trials
    except Exception:  # not written yet
        return {}
    saved = {}
    for trial in trials:
        latest = trial.run_metadata.checkpoint_manager.latest_checkpoint_result
        saved[trial.trial_id] = (trial.status, (latest.metrics or {}).get("epoch", 0) if latest else 0)
    return saved


def _midway_in_mlflow(server) -> set[str]:
    """trial_ids MLflow shows RUNNING with a checkpoint and at least two epochs to go, if a trial has FINISHED
    (two: under load the check and the kill are seconds apart, and one epoch is a few seconds)."""
    children = _children(server)
    if not any(c.info.status == "FINISHED" for c in children):
        return set()
    return {
        c.data.tags["trial_id"] for c in children
        if c.info.status == "RUNNING" and 1 <= int(c.data.tags.get("tokensweep.checkpoint_epoch", 0)) <= EPOCHS - 2
    }  # fmt: skip


def _kill_point(server, s3):
    """(trial_id, checkpoint epoch) once Tune's saved state holds a finished trial and a running one with a
    checkpoint, while MLflow shows that one still has epochs to go (so the resume has work left)."""
    if not _midway_in_mlflow(server):
        return None  # cheap check first: reading Tune's state costs more
    saved = _saved_trials(s3)
    if not any(status == "TERMINATED" for status, _ in saved.values()):
        return None
    # a running trial is saved as PENDING (to be started again on restore); asked again: reading the saved
    # state took a moment, in which the trial may have gone on to its end
    running = _midway_in_mlflow(server)
    midway = [(t, epoch) for t, (status, epoch) in saved.items() if t in running and status == "PENDING" and epoch >= 1]
    return midway[0] if midway else None


@pytest.fixture(scope="module")
def stack(tmp_path_factory, postgres, s3_server, ray_token_env):
    root = tmp_path_factory.mktemp("stack")
    s3_server.create_bucket(BUCKET)
    server = MlflowServer(
        root, backend_store_uri=postgres.url, artifacts_destination=f"s3://{BUCKET}/mlartifacts", env=s3_server.env
    )
    cluster = None
    try:
        env = {**ray_token_env, **s3_server.env}  # the S3 settings on every node and for the driver
        cluster = _launch_two_nodes(root, env)
        server.start()  # while the nodes start
        info = _two_nodes_info(root, cluster)
        services = {"postgres": postgres.proc.pid, "mlflow server": server.proc.pid, "moto": s3_server.proc.pid}
        yield from _run_scenario(root, env, server, s3_server, info, services)
    finally:
        server.stop()
        if cluster is not None:
            _stop_two_nodes(cluster)


def _launch_two_nodes(root, env) -> subprocess.Popen:
    helper = SUPPORT / "two_node_cluster.py"
    with open(root / "cluster.log", "w") as log:
        return subprocess.Popen(
            [sys.executable, str(helper)], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
            text=True, start_new_session=True,
        )  # fmt: skip


def _two_nodes_info(root, proc) -> dict:
    """ADDRESS, HEAD and WORKER, once both nodes are up."""
    info = {}
    while len(info) < 3:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError("the two-node cluster did not start:\n" + (root / "cluster.log").read_text()[-3000:])
        key, _, value = line.strip().partition(" ")
        info[key] = value
    return info


def _stop_two_nodes(proc):
    try:
        proc.stdin.close()  # the helper shuts its nodes down
        proc.wait(timeout=90)
    except (subprocess.TimeoutExpired, BrokenPipeError, OSError):
        stop_process_group(proc)


def _sockets(services: dict) -> dict:
    """service -> the addresses its processes listen on"""
    return {name: sorted({ip for ip, *_ in listening_sockets(p.pid for p in tree(pid))}) for name, pid in services.items()}


def _wait(predicate, timeout, what, proc, log):
    """wait_for, with the tail of the process's output when it fails."""
    try:
        return wait_for(predicate, timeout, what, interval=0.5, alive=lambda: proc.poll() is None)
    except AssertionError as err:
        raise AssertionError(f"{err} (rc {proc.poll()})\n--- {log.name} ---\n{log.read_text()[-5000:]}") from None


def _run_scenario(root, env, server, s3, info, services):
    storage = f"s3://{BUCKET}/ray_results"
    args = ["run", SMOKE, "--address", info["ADDRESS"], "--storage", storage, "--tracking-uri", server.url, "--quiet", *sets(OVERRIDES)]
    from ray.tune import ExperimentAnalysis  # noqa: F401  (imported now: _kill_point must be quick)

    sockets = _sockets(services)  # all three answer by now; probed here, not between the kill point and the kill
    t0 = time.monotonic()
    first, first_log = start_cli(args, root, env, "first.log")
    try:
        midway = _wait(lambda: _kill_point(server, s3), 400, "a finished trial and one half-way", first, first_log)
        os.kill(first.pid, signal.SIGKILL)  # the driver only; Ray ends its trial actors
        first.wait(timeout=30)
    finally:
        stop_process_group(first)
    killed_at = time.monotonic()
    before = {c.data.tags["trial_id"]: c for c in _children(server)}
    assert before[midway[0]].info.status == "RUNNING"

    second, second_log = start_cli(args + ["--resume"], root, env, "resume.log")
    timeline = {}
    try:
        logged = {t: _last_epoch(c) for t, c in before.items()}

        def resumed_trial_logged():
            return any(_last_epoch(c) > logged.get(c.data.tags["trial_id"], 0) for c in _children(server))

        _wait(resumed_trial_logged, 300, "a resumed trial to log a new epoch", second, second_log)
        checkpoints = _checkpoint_keys(s3, BUCKET)
        server.stop()
        timeline["down"] = time.monotonic()
        _wait(lambda: _checkpoint_keys(s3, BUCKET) - checkpoints, 300, "a new checkpoint in S3 while MLflow is down", second, second_log)
        _wait(lambda: "is unreachable" in second_log.read_text(), 120, "the driver to notice the outage", second, second_log)
        server.start()
        timeline["up"] = time.monotonic()
        second.wait(timeout=600)
        timeline["end"] = time.monotonic()
    finally:
        stop_process_group(second)
    print(
        f"\n[cluster stack] first driver killed after {killed_at - t0:.1f}s; MLflow down {timeline['up'] - timeline['down']:.1f}s; "
        f"resumed sweep ended {timeline['end'] - killed_at:.1f}s after the kill"
    )
    yield dict(
        root=root, env=env, args=args, sockets=sockets, server=server, s3=s3, info=info, midway=midway, before=before,
        output=second_log.read_text(), returncode=second.returncode,
    )  # fmt: skip


def test_the_resumed_sweep_finishes_through_the_outage(stack):
    out = stack["output"]
    assert stack["returncode"] == 0, out[-6000:]
    assert "4 trial(s), 4 finished, 0 failed" in out, out[-3000:]
    assert "is unreachable" in out and "answers again; every waiting write delivered" in out, out[-3000:]
    assert f"Tune state: s3://{BUCKET}/ray_results/smoke" in out


def test_the_services_listen_on_loopback_only(stack):
    """PostgreSQL, the MLflow server and S3. (Ray's nodes keep Ray's defaults: a driver that connects to
    127.0.0.1:PORT is sent to the machine's own address by Ray itself, so a loopback-only Ray is not
    reachable by its own drivers.)"""
    sockets = stack["sockets"]
    assert all(sockets.values()), sockets  # the probe sees each of them listen
    assert {ip for ips in sockets.values() for ip in ips} <= {"127.0.0.1", "::ffff:127.0.0.1"}, sockets


def test_every_trial_is_recorded_once_with_every_epoch(stack):
    client = _mlflow(stack["server"])
    exp = client.get_experiment_by_name("smoke")
    runs = client.search_runs([exp.experiment_id], max_results=100)
    parents = [r for r in runs if r.data.tags.get("tokensweep.role") == "sweep"]
    children = [r for r in runs if r.data.tags.get("tokensweep.role") == "trial"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert parents[0].data.tags["tokensweep.resumes"] == "1"
    assert "tokensweep.tracking_errors" not in parents[0].data.tags
    trial_ids = [c.data.tags["trial_id"] for c in children]
    assert len(trial_ids) == len(set(trial_ids)) == 4, trial_ids  # never a second run for a trial
    assert set(stack["before"]) <= set(trial_ids)
    for child in children:
        assert child.info.status == "FINISHED", child.info.run_name
        assert child.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        for key in ("top1", "train_loss", "val_loss", "lr"):
            steps = sorted(m.step for m in client.get_metric_history(child.info.run_id, key))
            assert steps == list(range(1, EPOCHS + 1)), (child.info.run_name, key, steps)  # none lost, none twice
        assert "images_per_sec" in child.data.metrics
    nodes = {c.data.tags["ray_node_id"] for c in children}
    assert nodes <= {stack["info"]["HEAD"], stack["info"]["WORKER"]} and len(nodes) == 2, nodes


def test_the_interrupted_trial_continued_from_its_checkpoint_in_s3(stack):
    s3, (trial_id, saved_epoch) = stack["s3"], stack["midway"]
    keys = s3.keys(BUCKET, "ray_results/smoke/")
    (trial_dir,) = {k.split("/")[2] for k in keys if k.split("/")[2].endswith(trial_id)}
    checkpoints = sorted({k.split("/")[3] for k in keys if k.split("/")[2] == trial_dir and k.split("/")[3].startswith("checkpoint_")})
    assert checkpoints, f"no checkpoint of {trial_dir} in the bucket"
    # Tune's log of the trial's reports, from the bucket: the resumed run's first report has
    # iterations_since_restore == 1; restored from the checkpoint of epoch k, its epoch is k + 1 > 1
    lines = s3.read(BUCKET, f"ray_results/smoke/{trial_dir}/result.json").decode().splitlines()
    reports = [json.loads(line) for line in lines if line.strip()]
    restarts = [r for r in reports if r.get("iterations_since_restore") == 1]
    resumed_from = restarts[-1]["epoch"] - 1
    # from the checkpoint in Tune's saved state when the driver was killed (or one a later snapshot saved
    # before the kill landed), never past the last checkpoint MLflow had seen
    reached = int(stack["before"][trial_id].data.tags["tokensweep.checkpoint_epoch"])
    history = [(r["epoch"], r["iterations_since_restore"]) for r in reports]
    assert 1 <= saved_epoch <= resumed_from <= reached, (saved_epoch, resumed_from, reached, history)
    print(f"\n[cluster stack] {trial_dir}: killed with checkpoint epoch {saved_epoch} saved, resumed after epoch {resumed_from}")
    assert reports[-1]["epoch"] == EPOCHS
    run = next(c for c in _children(stack["server"]) if c.data.tags["trial_id"] == trial_id)
    assert run.data.tags["tokensweep.checkpoint_epoch"] == str(EPOCHS)


def test_artifacts_and_runs_live_in_s3_and_postgres(stack, postgres):
    import psycopg2

    client = _mlflow(stack["server"])
    exp = client.get_experiment_by_name("smoke")
    (parent,) = client.search_runs([exp.experiment_id], "tags.`tokensweep.role` = 'sweep'")
    spec_files = [a.path for a in client.list_artifacts(parent.info.run_id, "spec")]
    assert spec_files, "the parent run logs its spec"
    keys = stack["s3"].keys(BUCKET, "mlartifacts/")
    assert any(k.endswith(spec_files[0]) and parent.info.run_id in k for k in keys), keys  # served, stored in S3
    with psycopg2.connect(host="127.0.0.1", port=postgres.port, user=postgres.user, password=postgres.password, dbname=postgres.database) as conn:
        with conn.cursor() as cur:
            cur.execute("select status, count(*) from runs where experiment_id = %s group by status", (int(exp.experiment_id),))
            assert dict(cur.fetchall()) == {"FINISHED": 5}  # the parent and its 4 trials, in PostgreSQL


def test_the_same_sweep_again_on_s3_asks_for_resume_or_fresh(stack):
    proc = run_cli(stack["args"], cwd=stack["root"], env=stack["env"], timeout=120, check_rc=2)
    (line,) = proc.stderr.strip().splitlines()
    assert f"sweep 'smoke' already exists in s3://{BUCKET}/ray_results" in line and "--resume" in line
