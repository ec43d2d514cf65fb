"""Eight concurrent trials on the default sqlite store, on the local Ray that `tokensweep run` starts.

- No metric lost and no "database is locked": 8 trials at once (0.25 CPU each) while every trial's
  system-metrics monitor writes to the same sqlite file every second beside the driver's writes.
- While it runs, the local Ray it started is inspected: every port its processes listen on (GCS,
  raylet, agents, workers, Prometheus metrics) is bound to loopback - `tokensweep run` starts it in
  Ray's single-machine mode (see tokensweep.commands.run.choose_ray_auth); without that, Ray binds the
  machine's address and serves unauthenticated metrics on 0.0.0.0 - and token authentication is on as
  well (RAY_AUTH_MODE in its processes; a GCS client with the wrong token is refused, the right one
  answered), and it serves no Ray dashboard / Jobs API.
"""

import re
import subprocess
import sys

import pytest

from rel_helpers import listening_sockets, start_cli, stop_process_group, tree, wait_for
from sweep_helpers import check_child_schema, poll_db, sweep_runs, trial_statuses


EPOCHS = 3
SPEC = """
[sweep]
name = "eight"
[trial]
model = "vit_tiny_patch"
epochs = 3
tiny_train_per_class = 12
tiny_val_per_class = 4
batch_size = 24
warmup_epochs = 0.0
threads = 1
workers = 0
randaugment = false
mixup = 0.0
cutmix = 0.0
random_erasing = 0.0
bench_batch = 8
bench_steps = 1
[grid]
seed = [0, 1, 2, 3, 4, 5, 6, 7]
[resources]
cpus = 0.25
gpus = 0
max_concurrent_trials = 8
[tracking]
system_metrics = true
system_metrics_interval_s = 1
[bench]
enabled = false  # the concurrent writers are the trials; the bench stage runs after them, alone
"""

GCS_CLIENT = r"""
import sys
from ray._raylet import GcsClient
try:
    GcsClient(address=sys.argv[1]).internal_kv_keys(b"", None, timeout=60)
except Exception as err:
    print("REFUSED", type(err).__name__, str(err).splitlines()[0][:200])
else:
    print("ANSWERED")
"""
LOOPBACK = ("127.0.0.1", "::1", "::ffff:127.0.0.1")


def _ray_processes(driver_pid):
    procs = []
    for proc in tree(driver_pid):
        try:
            procs.append((proc, proc.cmdline(), proc.environ()))
        except Exception:
            continue
    return procs


@pytest.fixture(scope="module")
def eight(tmp_path_factory, ray_token_env):
    root = tmp_path_factory.mktemp("eight")
    spec = root / "eight.toml"
    spec.write_text(SPEC)
    proc, log = start_cli(["run", spec, "--num-cpus", "2", "--quiet"], root, ray_token_env)
    seen = {}
    try:
        alive = lambda: proc.poll() is None  # noqa: E731
        wait_for(lambda: trial_statuses(root / "mlflow.db").count("RUNNING") >= 4, 300, "trials running", alive=alive)
        procs = _ray_processes(proc.pid)
        seen["sockets"] = listening_sockets([p.pid for p, _, _ in procs])
        seen["auth_modes"] = {env.get("RAY_AUTH_MODE") for p, cmd, env in procs if "raylet" in " ".join(cmd[:1])}
        gcs = next(m[1] for _, cmd, _ in procs for arg in cmd if (m := re.match(r"--gcs-address=(\S+)", arg)))
        # a GCS busy with 8 trials on 2 cores can take longer than Ray's 5 s to answer a new client
        patient = {**ray_token_env, "RAY_gcs_rpc_server_connect_timeout_s": "60", "RAY_py_gcs_connect_timeout_s": "60"}
        wrong = {**patient, "RAY_AUTH_TOKEN": "0" * 64}
        wrong.pop("RAY_AUTH_TOKEN_PATH", None)
        for label, env in (("wrong_token", wrong), ("right_token", patient)):
            seen[label] = subprocess.run(
                [sys.executable, "-c", GCS_CLIENT, gcs], env=env, capture_output=True, text=True, timeout=120
            ).stdout.strip()
        proc.wait(timeout=600)
    finally:
        if proc.poll() is None:
            stop_process_group(proc)
    return dict(root=root, db=root / "mlflow.db", proc=proc, output=log.read_text(), seen=seen)


def test_eight_concurrent_trials_lose_no_metric(eight):
    assert eight["proc"].returncode == 0, eight["output"][-4000:]
    assert "database is locked" not in eight["output"]
    assert "MLflow write(s) failed" not in eight["output"]
    parents, children = sweep_runs(eight["db"], "eight")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert "tokensweep.tracking_errors" not in parents[0].data.tags
    assert sorted(int(c.data.params["seed"]) for c in children) == list(range(8))  # one run per trial
    for child in children:
        assert child.info.status == "FINISHED"
        check_child_schema(child, eight["db"])  # every per-epoch metric at steps 1..3, the final ones, the tags
        steps = _steps_by_key(eight["db"], child.info.run_id)
        for key in ("train_loss", "val_loss", "top1", "top5", "lr", "epoch_time_s"):
            assert steps.get(key) == list(range(1, EPOCHS + 1)), (key, steps.get(key))
        assert any(k.startswith("system/") for k in child.data.metrics), child.info.run_name  # monitors wrote too
    print(f"\n[eight] {next(line for line in eight['output'].splitlines() if line.startswith('time: '))}")


def _steps_by_key(db, run_id) -> dict[str, list[int]]:
    """metric -> every step logged for it, in one query (an MLflow client per metric costs a second each)."""
    steps = {}
    for key, step in poll_db(db, "select key, step from metrics where run_uuid = ? order by key, step", (run_id,)):
        steps.setdefault(key, []).append(step)
    return steps


def test_local_ray_listens_on_loopback_only(eight):
    sockets = eight["seen"]["sockets"]
    assert len(sockets) >= 3, sockets  # GCS, raylet, agents: the probe saw the Ray processes
    public = [s for s in sockets if s[0] not in LOOPBACK]
    assert public == [], public
    print("\n[local Ray listening sockets]", sorted({(ip, name) for ip, _, _, name in sockets}))


def test_local_ray_keeps_token_auth_and_serves_no_dashboard(eight):
    seen = eight["seen"]
    assert seen["auth_modes"] == {"token"}, seen
    assert seen["wrong_token"].startswith("REFUSED AuthenticationError"), seen["wrong_token"]
    assert seen["right_token"] == "ANSWERED", seen["right_token"]  # the refusal was the token's doing
    ports = {port for _, port, _, _ in seen["sockets"]}
    assert 8265 not in ports, seen["sockets"]  # no Ray dashboard / Jobs API
    names = {name for _, _, _, name in seen["sockets"]}
    assert not any("dashboard.py" in n for n in names)
