"""A Ray node lost mid-sweep: its trial is rescheduled on the other node, from its checkpoint, and finishes.

Two 1-CPU nodes (tests/support/two_node_cluster.py), two 1-CPU trials, so one runs on each. Once the trial on the worker
node has recorded its first epoch, the worker node is killed (no graceful drain). The trial fails
(its actor died), is retried (max_failures = 1) on the head node once that node's own trial is done,
continues from its epoch-1 checkpoint (shared storage: both nodes are this machine), and finishes.
(tests/e2e/platform/test_sweep_ray.py::test_trials_spread_over_two_nodes covers the spread itself.)

A node lost at the one unlucky moment - an epoch's result taken in by the driver, its checkpoint not yet
registered - is made certain by a plugin whose worker ends as Tune asks it to save epoch 2's checkpoint:
the trial continues from that checkpoint all the same, and no epoch is trained twice. What the driver
does about it (tokensweep.sweep.tuner.ContinueFromLastResult) is checked on Tune's own trial objects
with checkpoint folders, for a retried trial and one restored from Tune's saved state.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path


import pytest
from helpers import SUPPORT, run_cli
from rel_helpers import ONE_CPU_NO_EXTRAS, TINY_TRIAL, TINY_TRIAL_TOML, sets, start_cli, stop_process_group, wait_for
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
    reports = _reports(tmp_path / "ray_results" / "node-loss", moved.info.run_name)  # and none trained twice
    epochs = [r["epoch"] for r in reports]
    assert epochs == sorted(set(epochs)) and epochs[-1] == 3, epochs
    nodes = {r["ray_node_id"] for r in reports}
    assert nodes == {info["WORKER"], info["HEAD"]}, nodes


def _reports(experiment: Path, run_name: str) -> list[dict]:
    """Tune's log of every report of the trial (result.json in its folder), on every node it ran on."""
    (results,) = experiment.glob(f"{run_name}_*/result.json")
    return [json.loads(line) for line in results.read_text().splitlines() if line.strip()]


# An embedding (the patch one) whose module also makes the trial's worker end when Tune first asks it to
# save epoch 2's checkpoint: that epoch's result has reached the driver, its checkpoint is in the storage
# and not registered, as when a node is lost between the two. The retried worker finds the mark and lives.
LOST_SAVE_PLUGIN = """
import os, pathlib
from ray.tune.trainable import FunctionTrainable
from trials.models.builtin import patch
from trials.plugins import register_embedding

@register_embedding()
def lost_save(img_size, dim):
    return patch(img_size, dim)

MARK = pathlib.Path(os.environ["LOST_SAVE_MARK"])
save = FunctionTrainable.save_checkpoint

def save_checkpoint(self, checkpoint_dir=""):
    result = save(self, checkpoint_dir)
    if result.metrics.get("epoch") == 2 and not MARK.exists():
        MARK.touch()
        os._exit(1)
    return result

FunctionTrainable.save_checkpoint = save_checkpoint
"""

LOST_SAVE_SPEC = f"""
[sweep]
name = "lostsave"

[trial]{TINY_TRIAL_TOML}epochs = 3
tiny_train_per_class = 20

[failure]
max_failures = 1
{ONE_CPU_NO_EXTRAS}"""


def test_a_worker_lost_before_its_checkpoint_registers_continues_from_that_checkpoint(tmp_path, ray_token_env):
    (tmp_path / "lost_save.py").write_text(LOST_SAVE_PLUGIN)
    (tmp_path / "lostsave.toml").write_text(LOST_SAVE_SPEC)
    mark = tmp_path / "lost"
    env = {**ray_token_env, "LOST_SAVE_MARK": str(mark)}
    args = ["run", "lostsave.toml", "--plugin", "lost_save", "--set", 'trial.model="vit_tiny_lost_save"', "--quiet"]
    done = run_cli(args, cwd=tmp_path, env=env, timeout=300, check_rc=0)
    assert mark.exists()  # the worker did end at epoch 2's save
    assert "1 trial(s), 1 finished, 0 failed" in done.stdout + done.stderr
    db = tmp_path / "mlflow.db"
    (child,) = sweep_runs(db, "lostsave")[1]
    assert child.info.status == "FINISHED" and child.data.tags["tokensweep.retries"] == "1"
    assert metric_steps(db, child.info.run_id, "top1") == [1, 2, 3]
    experiment = tmp_path / "ray_results" / "lostsave"
    reports = _reports(experiment, child.info.run_name)
    # the last worker process (the retried one: the first ended, its mark is there) restored after epoch 2 and
    # trained epoch 3 only (main: [(2, 1), (3, 2)], epoch 2 trained again from epoch 1's checkpoint). Only its own
    # lines: Tune's driver copies result.json back from the storage when a trial restarts, and under load that
    # copy may lag the lines it had written itself, the first process's included
    retried = [(r["epoch"], r["iterations_since_restore"]) for r in reports if r["pid"] == reports[-1]["pid"]]
    assert retried == [(3, 1)], [(r["pid"], r["epoch"], r["iterations_since_restore"]) for r in reports]
    (folder,) = experiment.glob(f"{child.info.run_name}_*/")
    kept = {p.name: json.loads((p / ".metadata.json").read_text())["epoch"] for p in folder.glob("checkpoint_*")}
    assert kept == {"checkpoint_000001": 2, "checkpoint_000002": 3}, kept  # each epoch in a folder of its own (2 kept)


# --- the driver's part, on Tune's own trial objects ----------------------------------------------------------


def _trial(storage_path: Path):
    """A Tune trial as the driver holds it: epoch 1's checkpoint registered; epoch 2's result taken in, its
    checkpoint (checkpoint_000001, as the worker left it in the storage) not registered."""
    from ray import tune
    from ray.train._internal.session import _TrainingResult
    from ray.train._internal.storage import StorageContext
    from ray.tune.experiment import Trial

    from tokensweep.sweep.worker import train_trial

    tune.register_trainable("train_trial", train_trial)
    storage = StorageContext(storage_path=str(storage_path), experiment_dir_name="exp", trial_dir_name="t")
    trial = Trial("train_trial", config={}, storage=storage, checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
                  placement_group_factory=tune.PlacementGroupFactory([{"CPU": 1}]))  # fmt: skip
    trial.create_placement_group_factory()  # as Tune does when the trial is added
    for epoch in (1, 2):
        folder = Path(storage.trial_fs_path, f"checkpoint_{epoch - 1:06d}")
        folder.mkdir(parents=True)
        tune.Checkpoint(str(folder)).set_metadata({"epoch": epoch})
        result = {"epoch": epoch, "top1": 0.1 * epoch, "checkpoint_dir_name": folder.name}
        trial.update_last_result(result)
        if epoch == 1:
            trial.on_checkpoint(_TrainingResult(tune.Checkpoint(str(folder)), dict(result)))
    return trial


def _restored(trial):
    """The trial as Tuner.restore makes it again from Tune's saved state."""
    from ray.tune.experiment import Trial

    state, run_metadata = trial.get_json_state()
    again = Trial.from_json_state(state)
    again.restore_run_metadata(run_metadata)
    return again


@pytest.mark.parametrize("restart", ["retried", "resumed"])
def test_the_driver_registers_the_checkpoint_of_the_last_result_it_took_in(restart, tmp_path):
    from tokensweep.sweep.tuner import ContinueFromLastResult

    trial = _trial(tmp_path)
    assert trial.checkpoint.path.endswith("/checkpoint_000000")  # what Tune would restore: epoch 2 trained again
    if restart == "retried":
        ContinueFromLastResult().on_trial_recover(iteration=1, trials=[trial], trial=trial)
    else:
        trial = _restored(trial)
        ContinueFromLastResult().on_step_begin(iteration=0, trials=[trial])
    assert trial.checkpoint.path.endswith("/checkpoint_000001")
    assert trial.storage.current_checkpoint_index == 1  # the trial's next checkpoint goes to checkpoint_000002
    assert (tmp_path / "exp" / "t" / "checkpoint_000000").is_dir()  # two kept


@pytest.mark.parametrize("case", ["holds another epoch", "gone", "registered after all"])
def test_the_driver_leaves_tunes_checkpoint_unless_the_folder_holds_the_results_epoch(case, tmp_path):
    from ray import tune
    from ray.train._internal.session import _TrainingResult

    from tokensweep.sweep.tuner import ContinueFromLastResult

    trial = _trial(tmp_path)
    folder = tmp_path / "exp" / "t" / "checkpoint_000001"
    if case == "holds another epoch":
        tune.Checkpoint(str(folder)).set_metadata({"epoch": 3})
    elif case == "gone":
        shutil.rmtree(folder)
    else:  # Tune's own save came through: nothing is left to register
        trial.on_checkpoint(_TrainingResult(tune.Checkpoint(str(folder)), dict(trial.last_result)))
    before, index = trial.latest_checkpoint_result, trial.storage.current_checkpoint_index
    ContinueFromLastResult().on_trial_recover(iteration=1, trials=[trial], trial=trial)
    assert trial.latest_checkpoint_result is before and trial.storage.current_checkpoint_index == index
