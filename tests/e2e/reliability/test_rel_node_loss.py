"""A Ray node lost mid-sweep: its trial is rescheduled on the other node, from its checkpoint, and finishes.

Two 1-CPU nodes (tests/support/two_node_cluster.py), two 1-CPU trials, so one runs on each. Once the trial on the worker
node has recorded its first epoch, the worker node is killed (no graceful drain). The trial fails
(its actor died), is retried (max_failures = 1) on the head node once that node's own trial is done,
continues from its epoch-1 checkpoint (shared storage: both nodes are this machine), and finishes.
(tests/e2e/platform/test_sweep_ray.py::test_trials_spread_over_two_nodes covers the spread itself.)
"""

import json
import subprocess
import sys
from pathlib import Path


from helpers import SUPPORT
from rel_helpers import TINY_TRIAL, sets, start_cli, stop_process_group, wait_for
from sweep_helpers import metric_steps, poll_db, sweep_runs


SPEC = """
[sweep]
name = "node-loss"
[trial]
workers = 0
randaugment = false
mixup = 0.0
cutmix = 0.0
random_erasing = 0.0
[grid]
embedding = ["patch", "conv"]
[resources]
cpus = 1
gpus = 0
[failure]
max_failures = 1
[tracking]
system_metrics = false
[bench]
enabled = false  # the bench stage after training has no trial to move
"""


def _node_of_running_trials(db: Path) -> dict[str, str]:
    """run name -> ray_node_id tag, for trial runs that have recorded an epoch."""
    rows = poll_db(
        db,
        "select r.name, t.value from runs r join tags t on t.run_uuid = r.run_uuid "
        "where t.key = 'ray_node_id' and r.status = 'RUNNING'",
    )
    return dict(rows)


def test_trial_of_a_lost_node_is_rescheduled_and_finishes(tmp_path, ray_token_env):
    helper = SUPPORT / "two_node_cluster.py"
    cluster_log = open(tmp_path / "cluster.log", "w")
    cluster = subprocess.Popen(
        [sys.executable, str(helper)], env=ray_token_env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=cluster_log, text=True, start_new_session=True,
    )  # fmt: skip
    sweep = None
    try:
        info = {}
        while len(info) < 3:
            line = cluster.stdout.readline()
            assert line, (tmp_path / "cluster.log").read_text()[-3000:]
            key, _, value = line.strip().partition(" ")
            info[key] = value
        db = tmp_path / "mlflow.db"
        spec = tmp_path / "node-loss.toml"
        spec.write_text(SPEC)
        overrides = TINY_TRIAL + ["trial.epochs=3", "trial.tiny_train_per_class=240"]
        args = ["run", spec, "--address", info["ADDRESS"], "--quiet", *sets(overrides)]
        sweep, log = start_cli(args, tmp_path, ray_token_env)
        alive = lambda: sweep.poll() is None  # noqa: E731
        on_worker = wait_for(
            lambda: [name for name, node in _node_of_running_trials(db).items() if node == info["WORKER"]],
            300, "a trial on the worker node to record an epoch", alive=alive,
        )  # fmt: skip
        cluster.stdin.write("remove\n")
        cluster.stdin.flush()
        assert cluster.stdout.readline().strip() == "REMOVED"
        sweep.wait(timeout=400)
        output = log.read_text()
    finally:
        if sweep is not None and sweep.poll() is None:
            stop_process_group(sweep)
        try:
            cluster.stdin.close()  # the helper shuts its remaining node down
            cluster.wait(timeout=90)
        except (subprocess.TimeoutExpired, BrokenPipeError):
            stop_process_group(cluster)
        cluster_log.close()

    assert sweep.returncode == 0, output[-4000:]
    assert "2 trial(s), 2 finished, 0 failed" in output
    parents, children = sweep_runs(db, "node-loss")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert sorted(c.info.run_name for c in children) == ["vit_tiny_conv", "vit_tiny_patch"]  # one run each
    moved = next(c for c in children if c.info.run_name == on_worker[0])
    assert moved.info.status == "FINISHED"
    assert moved.data.tags["tokensweep.retries"] == "1"
    assert moved.data.tags["ray_node_id"] == info["HEAD"]  # its last epochs ran on the node that was left
    for child in children:
        assert child.info.status == "FINISHED"
        assert metric_steps(db, child.info.run_id, "top1") == [1, 2, 3]  # no epoch logged twice
    # and none trained twice: Tune's log of every report of the moved trial, on both nodes
    (results,) = (tmp_path / "ray_results" / "node-loss").glob(f"{moved.info.run_name}_*/result.json")
    reports = [json.loads(line) for line in results.read_text().splitlines() if line.strip()]
    epochs = [r["epoch"] for r in reports]
    assert epochs == sorted(set(epochs)) and epochs[-1] == 3, epochs
    nodes = {r["ray_node_id"] for r in reports}
    assert nodes == {info["WORKER"], info["HEAD"]}, nodes
