"""Faults inside a sweep: a trial that raises, a NaN loss, bad images skipped, a worker killed mid-epoch.

One sweep on the shared test Ray head carries all four, so Ray, the driver and the MLflow store start
once: `nan` diverges (lr and weight decay at their maxima: AdamW's decay multiplies the weights by
1 - lr * wd = -99 every step, so they overflow within a few steps) and raises NonFiniteLoss; `bad-images`
reads an ImageFolder holding a truncated PNG and a text file named .jpg with bad_images = "skip";
`victim` is SIGKILLed (its Ray worker process) in the middle of its second epoch and must be retried from
its epoch-1 checkpoint; `steady` just runs. Then: every trial has exactly one MLflow run, the failed one
says why, the others finish, and no epoch is trained (logged) twice.
"""

import os
import re
import signal

import pytest

from rel_helpers import add_bad_files, image_folder, logged_steps, start_cli, stop_process_group, trial_process, wait_for
from sweep_helpers import metric_steps, poll_db, sweep_runs


SPEC = """
[sweep]
name = "faults"

[trial]
model = "vit_tiny_patch"
dataset = "tiny"
epochs = 1
tiny_train_per_class = 20
tiny_val_per_class = 5
batch_size = 32
warmup_epochs = 0.0
drop_path = 0.0
mixup = 0.0
cutmix = 0.0
randaugment = false
random_erasing = 0.0
label_smoothing = 0.0
workers = 0
bench_batch = 8
bench_steps = 1

[[variants]]
name = "victim"
epochs = 3
tiny_train_per_class = 250   # 78 steps per epoch: seconds to be killed in

[[variants]]
name = "nan"
lr = 10.0                    # the maximum TrialConfig allows
weight_decay = 10.0          # likewise

[[variants]]
name = "bad-images"
dataset = "imagefolder"
bad_images = "skip"
batch_size = 4

[[variants]]
name = "steady"

[resources]
cpus = 1
gpus = 0

[failure]
max_failures = 1

[tracking]
system_metrics = false

[bench]
enabled = false
"""


def _tag(db, run_name: str, key: str) -> str | None:
    rows = poll_db(
        db, "select t.value from tags t join runs r on r.run_uuid = t.run_uuid where r.name = ? and t.key = ?", (run_name, key)
    )
    return rows[0][0] if rows else None


@pytest.fixture(scope="module")
def faults(tmp_path_factory, ray_head):
    """Run the sweep, SIGKILL the victim's worker mid-epoch 2; return what the tests look at."""
    root = tmp_path_factory.mktemp("faults")
    data = image_folder(root / "data")
    bad_files = add_bad_files(data, "train") + add_bad_files(data, "val")
    spec = root / "faults.toml"
    spec.write_text(SPEC)
    db = root / "mlflow.db"
    args = ["run", spec, "--address", ray_head.address, "--data-dir", data]  # the default view: what a user reads
    proc, log = start_cli(args, root, ray_head.env)
    killed = {}
    try:
        alive = lambda: proc.poll() is None  # noqa: E731
        # once Tune holds the epoch-1 checkpoint (tag written from on_trial_save), epoch 2 is under way
        wait_for(lambda: _tag(db, "victim", "tokensweep.checkpoint_epoch") == "1", 300, "the victim's epoch-1 checkpoint",
                 interval=0.05, alive=alive)  # fmt: skip
        worker = wait_for(lambda: trial_process(ray_head.proc.pid, "victim"), 30, "the victim's worker", interval=0.05, alive=alive)
        os.kill(worker.pid, signal.SIGKILL)  # a Ray worker of our own head, mid-epoch 2
        killed = {"pid": worker.pid, "after_epochs": logged_steps(db, "victim")}
        proc.wait(timeout=400)
    finally:
        if proc.poll() is None:
            stop_process_group(proc)
    output = log.read_text()
    parents, children = sweep_runs(db, "faults")
    return dict(root=root, db=db, proc=proc, output=output, parents=parents, children=children, killed=killed, bad_files=bad_files)


def _child(faults, name):
    runs = [c for c in faults["children"] if c.info.run_name == name]
    assert len(runs) == 1, (name, [c.info.run_name for c in faults["children"]])
    return runs[0]


def test_every_trial_has_exactly_one_run_and_the_sweep_finishes(faults):
    assert faults["proc"].returncode == 1, faults["output"][-4000:]  # one trial failed: the sweep says so
    assert "4 trial(s), 3 finished, 1 failed" in faults["output"], faults["output"][-4000:]
    (parent,) = faults["parents"]
    assert parent.info.status == "FAILED" and parent.data.tags["tokensweep.failed_trials"] == "1"
    names = sorted(c.info.run_name for c in faults["children"])
    assert names == ["bad-images", "nan", "steady", "victim"]  # no run lost, none duplicated
    assert len({c.data.tags["trial_id"] for c in faults["children"]}) == 4
    assert all(c.data.tags["mlflow.parentRunId"] == parent.info.run_id for c in faults["children"])


def test_nan_loss_fails_its_run_with_the_reason(faults):
    nan = _child(faults, "nan")
    assert nan.info.status == "FAILED"
    reason = nan.data.tags["failure_reason"]
    assert reason.startswith("NonFiniteLoss: ") and "NaN" in reason, reason
    assert "\n" not in reason
    assert nan.data.tags["tokensweep.retries"] == "1"  # retried once (max_failures = 1), failed again


def test_each_failure_is_one_line_with_its_cause_and_the_file_with_its_traceback(faults):
    output = faults["output"]
    assert "Traceback" not in output, output[-4000:]  # Ray's ~40 lines per failure only with -v
    failures = [line for line in output.splitlines() if " nan " in f"{line} " and ("retrying" in line or "failed" in line)]
    assert len(failures) == 2, output[-4000:]  # the first failure (retried) and the last
    for line in failures:
        match = re.search(r"NonFiniteLoss: .*\(traceback: (\S+/error\.txt)\)$", line)
        assert match, line
        assert "NonFiniteLoss" in (faults["root"] / match.group(1)).read_text()  # relative to the sweep's folder


def test_other_trials_continue_and_finish(faults):
    for name in ("steady", "bad-images", "victim"):
        run = _child(faults, name)
        assert run.info.status == "FINISHED", (name, run.data.tags.get("failure_reason"))
        assert "images_per_sec" in run.data.metrics and "failure_reason" not in run.data.tags


def test_bad_images_are_skipped_and_counted_in_mlflow(faults):
    run = _child(faults, "bad-images")
    assert run.data.metrics["bad_images"] == len(faults["bad_files"]) == 4  # 2 in train, 2 in val, each once
    assert metric_steps(faults["db"], run.info.run_id, "bad_images") == [1]


def test_killed_worker_is_retried_from_its_checkpoint_without_retraining(faults):
    assert faults["killed"]["after_epochs"] == [1], faults["killed"]  # killed after epoch 1 was recorded
    victim = _child(faults, "victim")
    assert victim.info.status == "FINISHED"
    assert victim.data.tags["tokensweep.retries"] == "1"
    assert victim.data.tags["tokensweep.checkpoint_epoch"] == "3"
    last_failure = victim.data.tags["tokensweep.last_failure"]
    assert "died" in last_failure.lower() or "actor" in last_failure.lower(), last_failure
    # every epoch exactly once in MLflow ...
    for key in ("top1", "train_loss", "val_loss", "epoch_time_s"):
        assert metric_steps(faults["db"], victim.info.run_id, key) == [1, 2, 3], key
    # ... and trained exactly once: Tune's own log of every result the trial reported (which the MLflow
    # callback would de-duplicate) shows epoch 1 from the killed process, epochs 2-3 from a new one
    reports = tune_results(faults["root"], "victim")
    assert [r["epoch"] for r in reports] == [1, 2, 3]
    assert reports[0]["pid"] == faults["killed"]["pid"] != reports[1]["pid"] == reports[2]["pid"]
    assert reports[1]["iterations_since_restore"] == 1  # the first report after restoring epoch 1's checkpoint
    assert not psutil_alive(faults["killed"]["pid"])


def tune_results(root, trial_name: str) -> list[dict]:
    import json

    (path,) = (root / "ray_results" / "faults").glob(f"{trial_name}_*/result.json")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def psutil_alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_the_sweep_says_how_long_each_phase_took(faults):
    """The summary's time line survives the faults (how long is the benchmarks' question, not a test's)."""
    m = [line for line in faults["output"].splitlines() if line.startswith("time: ")]
    assert m, faults["output"][-3000:]
    print(f"\n[faults] {m[0]}")
    total = float(m[0].split()[1].rstrip("s"))
    assert total > 0 and "tune" in m[0], m[0]
