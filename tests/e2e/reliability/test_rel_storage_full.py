"""Storage faults under a running sweep: a full disk under the MLflow store or under Tune's storage, a
corrupted checkpoint (a store that is no database or cannot be written:
tests/unit/reliability/test_rel_storage.py).

The full disks are real: a small tmpfs (mounted by the test, as root; skipped where mounting is not
allowed) filled with a file, then freed (the file deleted, or the tmpfs made larger).
"""

import json
import os
import re
import shutil
import signal
import time
from pathlib import Path

import pytest

from helpers import run_cli
from rel_helpers import (LOST, TINY_TRIAL_TOML, fill_disk, logged_steps, paused, resize_disk, small_disk, start_cli, stop_process_group,
                         trial_process, wait_for)  # fmt: skip
from sweep_helpers import metric_steps, poll_db, sweep_runs

SPEC = f"""
[sweep]
name = "{{name}}"

[trial]{TINY_TRIAL_TOML}epochs = {{epochs}}
tiny_train_per_class = {{per_class}}

[[variants]]
name = "only"

[resources]
cpus = 1
gpus = 0

[failure]
max_failures = 1
keep_checkpoints = {{keep}}

[tracking]
system_metrics = false

[bench]
enabled = false    # no bench stage: its own writes at the end would change when the last outage is noticed
"""


def _spec(tmp_path: Path, name: str, epochs: int, per_class: int, keep: int = 2) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(SPEC.format(name=name, epochs=epochs, per_class=per_class, keep=keep))
    return path


def _epochs(db: Path) -> list[int]:
    return logged_steps(db, "only")


def test_a_full_disk_under_the_mlflow_store_keeps_the_writes_and_says_what_is_lost(tmp_path, ray_head):
    """Full after epoch 1, freed again: the waiting writes arrive, in order, once. Full again after epoch 3
    and never freed: the sweep says how many writes were not recorded, exits 1, and the run is not FINISHED.

    The trial's pace is taken out of it: the driver writes every MLflow record and hands the trial its next
    epoch only once it has taken in the last one, so while it is paused (SIGSTOP) nothing reaches the store
    and the trial stops at the end of its epoch. The disk is filled and freed with the driver paused, and it
    is paused past its next retry before the store answers again (else the trial ran on, unpaced, while the
    driver waited to retry: it could finish before the second fill, and nothing of it was lost).
    """
    from tokensweep.tracking.store import RETRY_EVERY_S

    spec = _spec(tmp_path, "diskfull", epochs=5, per_class=150)  # ~1-2 s per epoch: each pause lands within one
    with small_disk(tmp_path / "store", "16m") as store:
        db = store / "mlflow.db"
        args = ["run", spec, "--address", ray_head.address, "--tracking-uri", f"sqlite:///{db}", "--quiet"]
        env = {**ray_head.env, "TOKENSWEEP_TRACKING_WAIT_S": "5"}
        proc, log = start_cli(args, tmp_path, env)
        try:
            # each pause follows what it waits for within a poll (50 ms): well within an epoch of the trial
            soon = {"interval": 0.05, "alive": lambda: proc.poll() is None}
            printed = lambda words: lambda: words in log.read_text()  # noqa: E731
            reported = tmp_path / "ray_results" / "diskfull"  # Tune's own results: not on the full disk
            wait_for(lambda: _epochs(db), 300, "epoch 1 in MLflow", **soon)
            with paused(proc):
                filler = fill_disk(store)
                full_after = _tune_epochs(reported)
            wait_for(printed("is unreachable (database or disk is full)"), 120, "the outage note", **soon)
            wait_for(lambda: _tune_epochs(reported) > full_after, 120, "an epoch reported while the disk is full", **soon)
            with paused(proc):
                filler.unlink()
                time.sleep(RETRY_EVERY_S)  # its retry is due when it goes on: the writes arrive at once
            wait_for(printed("answers again; every waiting write delivered"), 120, "the delivery", **soon)
            wait_for(lambda: len(_epochs(db)) >= 3, 300, "epoch 3 in MLflow", **soon)
            with paused(proc):
                fill_disk(store)  # and never freed
            proc.wait(timeout=300)
        finally:
            stop_process_group(proc)
        output = log.read_text()
        assert "Traceback" not in output, output[-4000:]
        if proc.returncode == 0:  # sqlite found room for the last writes in pages it already had: nothing was lost
            (child,) = sweep_runs(db, "diskfull")[1]
            assert child.info.status == "FINISHED" and _epochs(db) == [1, 2, 3, 4, 5], output[-3000:]
            assert "were not recorded" not in output
            return
        assert proc.returncode == 1, output[-4000:]
        assert re.search(LOST, output), output[-3000:]
        assert "is unreachable at the end of the sweep" in output  # the runs could not be closed either: it says so
        assert "the bench stage failed" not in output and "bench: FAILED" not in output  # disabled: nothing of it ran
        for line in output.splitlines():  # every MLflow error in one line: no sqlalchemy statement or link
            assert not line.startswith(("[SQL", "[parameters", "(Background on this error")), output[-3000:]
        (store / "filler.bin").unlink()
        steps = _epochs(db)
        assert steps == list(range(1, len(steps) + 1)) and 3 <= len(steps) < 5, steps  # delivered late, each once
        (child,) = sweep_runs(db, "diskfull")[1]
        assert child.info.status == "RUNNING"  # not FINISHED with epochs missing: its end was never recorded


def _tune_epochs(experiment: Path) -> int:
    seen = 0
    for path in experiment.glob("only_*/result.json"):
        for line in path.read_text().splitlines():
            try:
                seen = max(seen, json.loads(line).get("epoch", 0))
            except ValueError:
                pass
    return seen


def test_a_full_tune_storage_ends_in_one_line_and_resume_continues(tmp_path, ray_head):
    """Tune's storage fills up with checkpoints: the cause is ENOSPC, in one line; nothing half-written is
    used: with space again, --resume continues from a checkpoint that loads and finishes the trial."""
    spec = tmp_path / "tunefull.toml"
    spec.write_text(
        '[sweep]\nname = "tunefull"\nsmoke = true\n[trial]\nmodel = "vit_tiny_patch"\nepochs = 2\ntiny_train_per_class = 50\n'
        "[resources]\ncpus = 1\ngpus = 0\n[failure]\nmax_failures = 1\n[tracking]\nsystem_metrics = false\n[bench]\nenabled = false\n"
    )  # a smoke checkpoint is ~1.9 MB whatever the data: the 3 MB disk holds one and a half, so epoch 2's fills it
    db = tmp_path / "mlflow.db"
    with small_disk(tmp_path / "tune", "3m") as storage:
        args = ["run", spec, "--address", ray_head.address, "--storage", storage, "--quiet"]
        first = run_cli(args, cwd=tmp_path, env=ray_head.env, timeout=600, check_rc=1)
        output = first.stdout + first.stderr
        assert f"tokensweep run: error: Tune's storage {storage}/tunefull is full (No space left on device)" in first.stderr
        for words in ("UnpicklingError", "EOFError", "Ran out of input"):
            assert words not in output, (words, output[-4000:])
        assert not first.stderr.rstrip().splitlines()[-1].startswith(("  ", "Traceback"))  # it does not end in a traceback
        (parent,), (child,) = sweep_runs(db, "tunefull")
        assert "No space left on device" in child.data.tags["failure_reason"]
        assert parent.data.tags["failure_reason"] == f"OSError: Tune's storage {storage}/tunefull is full (No space left on device)"

        resize_disk(storage, "64m")
        resumed = run_cli(args + ["--resume"], cwd=tmp_path, env=ray_head.env, timeout=600, check_rc=0)
        assert "is unreadable" not in resumed.stdout + resumed.stderr  # no half-written checkpoint was registered
    (parent,), (child,) = sweep_runs(db, "tunefull")
    assert parent.info.status == child.info.status == "FINISHED"
    assert metric_steps(db, child.info.run_id, "top1") == [1, 2]


@pytest.fixture(scope="module")
def killed_after_third_checkpoint(tmp_path_factory, ray_head) -> tuple[Path, Path, dict]:
    """(project, kept, env): the sweep of the test below in `project`, its driver killed once its trial's third
    checkpoint registered, and `kept`, a copy of the project as the kill left it: the spec, Tune's storage,
    the MLflow store and the driver's record of Tune's state (XDG_STATE_HOME). One sweep killed for all the
    cases; each restores `kept` to the same place, so every path in Tune's state and MLflow holds."""
    root = tmp_path_factory.mktemp("lagging")
    project, kept = root / "project", root / "kept"
    project.mkdir()
    _spec(project, "lagging", epochs=4, per_class=200, keep=2)  # after the kill, one checkpoint more at least
    env = {**ray_head.env, "TUNE_GLOBAL_CHECKPOINT_S": "600", "XDG_STATE_HOME": str(project / "state")}  # snapshots only when checkpoints force them
    proc, _ = start_cli(["run", "lagging.toml", "--address", ray_head.address, "--quiet"], project, env)
    alive = lambda: proc.poll() is None  # noqa: E731
    checkpoint_epoch = "select t.value from tags t where t.key = 'tokensweep.checkpoint_epoch'"
    try:
        trial_dir = wait_for(lambda: next((project / "ray_results" / "lagging").glob("only_*"), None), 300, "the trial's folder", alive=alive)
        wait_for(lambda: trial_process(ray_head.proc.pid, trial_dir.name), 300, "the trial's worker", alive=alive)
        wait_for(lambda: poll_db(project / "mlflow.db", checkpoint_epoch) == [("3",)], 300, "the third checkpoint", interval=0.1, alive=alive)
        os.killpg(proc.pid, signal.SIGKILL)  # the driver we started (its own process group)
        proc.wait(timeout=30)
    finally:
        stop_process_group(proc)
    # Ray ends the dead driver's trial; until it has, the trial could still write beside the copy being made
    wait_for(lambda: trial_process(ray_head.proc.pid, trial_dir.name) is None, 120, "the killed driver's trial to end")
    shutil.copytree(project, kept, symlinks=True)
    return project, kept, env


@pytest.mark.parametrize("damage", ["corrupted", "deleted", "none"])
def test_resume_from_tunes_saved_checkpoints_when_storage_moved_on(damage, killed_after_third_checkpoint, ray_head):
    """Tune's saved state lags its storage: it lists a checkpoint Tune has deleted since (keeping 2), and
    names one to restore from that may be damaged while an intact one lies beside it.

    The driver is killed once the trial's third checkpoint registered (Tune deleted the first; its saved
    state, forced every 2 checkpoints, still lists the first two). `corrupted`: the one the state would
    restore from is cut off - --resume uses the newest that loads, says so, and the trial finishes
    (instead of failing on every resume). `deleted`: that one is gone, as when the driver was killed after
    Tune deleted it and before the snapshot that no longer names it reached the storage - --resume continues
    from the newest checkpoint a processed report names, says so, and numbers the next one after it (Tune's
    restore failed the trial on every try). All: no `Error handling checkpoint ... FileNotFoundError`
    traceback when Tune registers the next checkpoint and deletes the long-gone first one again.
    """
    project, kept, env = killed_after_third_checkpoint
    shutil.rmtree(project)
    shutil.copytree(kept, project, symlinks=True)  # as the kill left it, whatever the case before did
    db = project / "mlflow.db"
    tune_path = project / "ray_results" / "lagging"
    registered = _registered(tune_path)
    assert registered.name == "checkpoint_000001", registered  # epoch 2's, as the last forced snapshot saved it
    assert not (registered.parent / "checkpoint_000000").exists()  # deleted after the third registered
    assert (registered.parent / "checkpoint_000002").is_dir()  # the third: newer than what the state knows
    if damage == "corrupted":
        data = (registered / "checkpoint.pt").read_bytes()
        (registered / "checkpoint.pt").write_bytes(data[: len(data) // 3])  # cut off: does not load
    if damage == "deleted":
        shutil.rmtree(registered)

    args = ["run", "lagging.toml", "--address", ray_head.address, "--quiet", "--resume"]
    resumed = run_cli(args, cwd=project, env=env, timeout=600, check_rc=0)
    output = resumed.stdout + resumed.stderr
    for words in ("Error handling checkpoint", "FileNotFoundError", "Traceback"):
        assert words not in output, (words, output[-4000:])
    fell_back = re.search(rf"trial only: checkpoint '{re.escape(str(registered))}/checkpoint.pt' is unreadable .*; "
                          r"resuming from (checkpoint_\d+) instead, the newest checkpoint of the trial that loads", output)  # fmt: skip
    if damage == "corrupted":
        assert fell_back and fell_back[1] == "checkpoint_000002", output[-4000:]
    else:
        assert fell_back is None
    gone = "checkpoint_000001, the checkpoint Tune's saved state names, is gone (Tune deleted it after newer ones registered); continuing from checkpoint_000002 (epoch 3)"
    assert (gone in output) == (damage == "deleted"), output[-4000:]
    # epoch 4's checkpoint is numbered after the one the trial resumed from, never over an older epoch's name
    (results,) = tune_path.glob("*/result.json")
    last = json.loads(results.read_text().splitlines()[-1])
    assert (last["epoch"], last["checkpoint_dir_name"]) == (4, "checkpoint_000003")
    (child,) = sweep_runs(db, "lagging")[1]
    assert child.info.status == "FINISHED"
    assert metric_steps(db, child.info.run_id, "top1") == [1, 2, 3, 4]


def _registered(tune_path: Path) -> Path:
    """The checkpoint folder Tune's saved state would restore the trial from."""
    from ray import tune

    (trial,) = tune.ExperimentAnalysis(str(tune_path)).trials
    assert trial.checkpoint is not None
    return Path(trial.checkpoint.path)
