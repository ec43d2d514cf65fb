"""Storage faults: a full disk under the MLflow store or under Tune's storage, a corrupted checkpoint, a
store that is no database or cannot be written.

The full disks are real: a small tmpfs (mounted by the test, as root; skipped where mounting is not
allowed) filled with a file, then freed (the file deleted, or the tmpfs made larger).
"""

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from mlflow.exceptions import MlflowException

from rel_helpers import drop_read_override, fill_disk, paused, resize_disk, small_disk, start_cli, stop_process_group, wait_for
from sweep_helpers import CLI, SWEEPS, base_env, free_port, metric_steps, poll_db, run_cli, sweep_runs
from tokensweep.spec import load_spec

SPEC = """
[sweep]
name = "{name}"

[trial]
model = "vit_tiny_patch"
dataset = "tiny"
epochs = {epochs}
tiny_train_per_class = {per_class}
tiny_val_per_class = 5
batch_size = 32
warmup_epochs = 0.0
bench_batch = 8
bench_steps = 1
workers = 0

[[variants]]
name = "only"

[resources]
cpus = 1
gpus = 0

[failure]
max_failures = 1
keep_checkpoints = {keep}

[tracking]
system_metrics = false
"""


LOST = r"stayed unreachable; \d+ write\(s\) were not recorded \(.*\): those runs are incomplete"


def _spec(tmp_path: Path, name: str, epochs: int = 4, per_class: int = 300, keep: int = 2) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(SPEC.format(name=name, epochs=epochs, per_class=per_class, keep=keep))
    return path


def _epochs(db: Path) -> list[int]:
    rows = poll_db(db, "select m.step from metrics m join runs r on r.run_uuid = m.run_uuid where r.name = 'only' and m.key = 'top1'")
    return sorted(r[0] for r in rows)


@pytest.mark.slow
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

    spec = _spec(tmp_path, "diskfull", epochs=5)
    with small_disk(tmp_path / "store", "16m") as store:
        db = store / "mlflow.db"
        # no bench stage: its own writes at the end would change when the last outage is noticed
        args = ["run", spec, "--address", ray_head.address, "--tracking-uri", f"sqlite:///{db}", "--quiet",
                "--set", "bench.enabled=false"]  # fmt: skip
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
    import json

    seen = 0
    for path in experiment.glob("only_*/result.json"):
        for line in path.read_text().splitlines():
            try:
                seen = max(seen, json.loads(line).get("epoch", 0))
            except ValueError:
                pass
    return seen


@pytest.mark.slow
def test_a_full_tune_storage_ends_in_one_line_and_resume_continues(tmp_path, ray_head):
    """Tune's storage fills up with checkpoints: the cause is ENOSPC, in one line; nothing half-written is
    used: with space again, --resume continues from a checkpoint that loads and finishes the trial."""
    spec = tmp_path / "tunefull.toml"
    spec.write_text(
        '[sweep]\nname = "tunefull"\nsmoke = true\n[trial]\nmodel = "vit_tiny_patch"\nepochs = 4\n'
        "[resources]\ncpus = 1\ngpus = 0\n[failure]\nmax_failures = 1\n[tracking]\nsystem_metrics = false\n"
    )  # a smoke checkpoint is ~1.9 MB: the 3 MB disk holds one and a half
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
    assert metric_steps(db, child.info.run_id, "top1") == [1, 2, 3, 4]


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["corrupted", "none"])
def test_resume_from_tunes_saved_checkpoints_when_storage_moved_on(damage, tmp_path, ray_head):
    """Tune's saved state lags its storage: it lists a checkpoint Tune has deleted since (keeping 2), and
    names one to restore from that may be damaged while an intact one lies beside it.

    The driver is killed once the trial's third checkpoint registered (Tune deleted the first; its saved
    state, forced every 2 checkpoints, still lists the first two). `corrupted`: the one the state would
    restore from is cut off - --resume uses the newest that loads, says so, and the trial finishes
    (instead of failing on every resume). Both: no `Error handling checkpoint ... FileNotFoundError`
    traceback when Tune registers the next checkpoint and deletes the long-gone first one again.
    """
    spec = _spec(tmp_path, "lagging", epochs=6, per_class=300, keep=2)
    db = tmp_path / "mlflow.db"
    tune_path = tmp_path / "ray_results" / "lagging"
    args = ["run", spec, "--address", ray_head.address, "--quiet"]
    env = {**ray_head.env, "TUNE_GLOBAL_CHECKPOINT_S": "600"}  # snapshots only when checkpoints force them
    proc, log = start_cli(args, tmp_path, env)
    checkpoint_epoch = "select t.value from tags t where t.key = 'tokensweep.checkpoint_epoch'"
    try:
        wait_for(lambda: poll_db(db, checkpoint_epoch) == [("3",)], 300, "the third checkpoint", interval=0.1,
                 alive=lambda: proc.poll() is None)  # fmt: skip
        os.killpg(proc.pid, signal.SIGKILL)  # the driver we started (its own process group)
        proc.wait(timeout=30)
    finally:
        stop_process_group(proc)
    registered = _registered(tune_path)
    assert registered.name == "checkpoint_000001", registered  # epoch 2's, as the last forced snapshot saved it
    assert not (registered.parent / "checkpoint_000000").exists()  # deleted after the third registered
    assert (registered.parent / "checkpoint_000002").is_dir()  # the third: newer than what the state knows
    if damage == "corrupted":
        data = (registered / "checkpoint.pt").read_bytes()
        (registered / "checkpoint.pt").write_bytes(data[: len(data) // 3])  # cut off: does not load

    resumed = run_cli(args + ["--resume"], cwd=tmp_path, env=env, timeout=600, check_rc=0)
    output = resumed.stdout + resumed.stderr
    for words in ("Error handling checkpoint", "FileNotFoundError", "Traceback"):
        assert words not in output, (words, output[-4000:])
    fell_back = re.search(rf"trial only: checkpoint '{re.escape(str(registered))}/checkpoint.pt' is unreadable .*; "
                          r"resuming from (checkpoint_\d+) instead, the newest checkpoint of the trial that loads", output)  # fmt: skip
    if damage == "corrupted":
        assert fell_back and fell_back[1] == "checkpoint_000002", output[-4000:]
    else:
        assert fell_back is None
    (child,) = sweep_runs(db, "lagging")[1]
    assert child.info.status == "FINISHED"
    assert metric_steps(db, child.info.run_id, "top1") == [1, 2, 3, 4, 5, 6]


def _registered(tune_path: Path) -> Path:
    """The checkpoint folder Tune's saved state would restore the trial from."""
    from ray import tune

    (trial,) = tune.ExperimentAnalysis(str(tune_path)).trials
    assert trial.checkpoint is not None
    return Path(trial.checkpoint.path)


# --- a store that is no database, or cannot be written: one line, before Ray ---------------------------------


def _one_line(proc, fragment):
    assert proc.returncode == 2, (proc.returncode, proc.stdout[-2000:], proc.stderr[-3000:])
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert fragment in lines[0], lines[0]


@pytest.mark.parametrize("what", ["directory", "file"])
def test_a_store_that_cannot_be_written_is_one_line_before_ray(what, tmp_path):
    """chmod 555 on the store's directory, or 444 on the store. As root, chmod does not stop writes: the
    child runs without the capabilities that let root write anything (setpriv, as for unreadable data)."""
    prefix = drop_read_override()
    if prefix is None:
        pytest.skip("running as root and no setpriv to drop CAP_DAC_OVERRIDE: chmod cannot stop root writing")
    locked = tmp_path / "store"
    locked.mkdir()
    db = locked / "mlflow.db"
    if what == "file":
        from mlflow import MlflowClient

        MlflowClient(f"sqlite:///{db}").search_experiments()  # a real store, then read-only
        target, mode, fragment = db, 0o444, f"{db} is not writable (permission denied)"
    else:
        target, mode, fragment = locked, 0o555, f"directory {locked} is not writable (permission denied)"
    work = tmp_path / "work"
    work.mkdir()
    before = sorted(p.name for p in locked.iterdir())
    target.chmod(mode)
    try:
        started = time.monotonic()
        proc = subprocess.run([*prefix, *CLI, "run", str(SWEEPS / "smoke.toml"), "--tracking-uri", f"sqlite:///{db}"],
                              cwd=work, env=base_env(), capture_output=True, text=True, timeout=120)  # fmt: skip
    finally:
        target.chmod(0o755)
    _one_line(proc, fragment)
    assert time.monotonic() - started < 30  # no Ray started
    assert list(work.iterdir()) == [] and sorted(p.name for p in locked.iterdir()) == before


# --- lost writes: one wording whichever phase gives up; a disabled bench runs nothing ---------------------------


@pytest.fixture
def sweep_store(tmp_path, monkeypatch):
    """A sweep's parent run with one trial run RUNNING in a real sqlite store, and a real client of a store that
    has gone away (a closed port: refused at once, MLflow asked not to retry)."""
    from tokensweep.tracking.store import RetryingClient
    from tokensweep.tracking.tracker import SweepTracker

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    tracker = SweepTracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "smoke")
    tracker.start_parent(tune_path=str(tmp_path / "t"), command="test", tags={}, spec_text="", spec_name="s.toml", resolved={})
    spec = load_spec(SWEEPS / "smoke.toml", ["bench.enabled=false"])
    configs = {"trial_0": spec.variants[0].config}
    child = tracker.start_child("trial_0", "trial_0", configs["trial_0"].params(), {})
    return spec, tracker, configs, child, RetryingClient(f"http://127.0.0.1:{free_port()}")


def test_a_close_that_never_reaches_mlflow_is_worded_like_any_lost_write(sweep_store, monkeypatch, capsys):
    """Every trial write arrived, then the store went away: the sweep's own last write (closing its runs) is
    lost like a trial's, in the same words, counted, and the runs left open are named."""
    from tokensweep.sweep.driver import close_parent
    from tokensweep.tracking.callback import MlflowTrialLogger

    spec, tracker, _, _, gone = sweep_store
    monkeypatch.setenv("TOKENSWEEP_TRACKING_WAIT_S", "0")
    callback = MlflowTrialLogger(tracker.tracking_uri, "smoke", tracker.experiment_id, tracker.parent_run_id, describe=None)
    tracker.client = gone
    close_parent(tracker, callback, "FINISHED", {}, {}, time.perf_counter())
    err = capsys.readouterr().err
    assert re.search(LOST, err) and "(1 x close the sweep's runs)" in err, err
    assert f"its parent run {tracker.parent_run_id} and unfinished trial runs were not closed" in err
    assert callback.errors == 1 and all(line.startswith("tokensweep run: ") for line in err.strip().splitlines()), err


def test_a_store_unreachable_through_the_wait_is_not_waited_for_again(capsys):
    """The trials' writes waited the sweep's whole tracking wait in vain; the close, queued after them, gets
    one more try, not a second wait, and all of them are reported in one line."""
    from tokensweep.tracking.store import PendingWrites

    now = [0.0]
    pending = PendingWrites("MLflow", retry_every_s=2, clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))
    tries = []

    def refused(what):
        tries.append(what)
        raise ConnectionRefusedError(111, "Connection refused")

    pending.submit("log result", refused, "epoch 4")
    assert not pending.wait(30) and now[0] >= 30  # before the stages: waited, nothing reported yet
    assert "were not recorded" not in capsys.readouterr().err
    tries.clear()
    pending.submit("close the sweep's runs", refused, "close")
    waited_from = now[0]
    assert pending.drain(30) == 2 and now[0] == waited_from and tries == ["epoch 4"]
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == ["tokensweep run: error: MLflow stayed unreachable; 2 write(s) were not recorded "
                     "(1 x log result, 1 x close the sweep's runs): those runs are incomplete"]  # fmt: skip


def test_a_disabled_bench_runs_nothing_of_its_stage(sweep_store, caplog):
    """bench.enabled=false with the store unreachable: no bench stage fails, nothing is measured; the record a
    later `tokensweep bench --sweep` needs waits with the sweep's other writes and arrives when the store does."""
    from tokensweep.sweep import bench
    from tokensweep.sweep.bench import skip_stage
    from tokensweep.tracking import tags as T
    from tokensweep.tracking.store import PendingWrites

    spec, tracker, configs, child, gone = sweep_store
    store, tracker.client = tracker.client, gone
    pending = PendingWrites("MLflow", retry_every_s=0)
    outcome = skip_stage(spec, tracker, configs, pending)
    assert outcome.status == "disabled" and not outcome.failed and outcome.table is None
    assert pending.waiting == 1 and "bench stage failed" not in caplog.text
    tracker.client = store  # the store answers again
    assert pending.wait(0)
    assert tracker.tags_of(tracker.parent_run_id)[T.BENCH_STATUS] == "disabled"
    assert bench.read_architectures(tracker)[1] == {tracker.client.get_run(child).data.tags[T.ARCH_ID]: [child]}
    assert T.BENCHES not in tracker.tags_of(tracker.parent_run_id)  # no bench was started


def test_mlflow_errors_are_one_line(monkeypatch):
    """sqlalchemy's error (statement, parameters, background link on lines of their own) and a refused
    request (urllib3's retry history): each one line that says why."""
    import sqlite3

    from sqlalchemy.exc import OperationalError

    from tokensweep.tracking.store import RetryingClient, mlflow_error

    full = OperationalError("INSERT INTO metrics (key, value) VALUES (?, ?)", ("top1", 1.0),
                            sqlite3.OperationalError("database or disk is full"))  # fmt: skip
    assert len(str(full).splitlines()) > 1
    assert mlflow_error(full) == "OperationalError: database or disk is full"
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with pytest.raises(Exception) as refused:
        RetryingClient(f"http://127.0.0.1:{free_port()}").get_experiment_by_name("x")
    assert re.fullmatch(r"MlflowException: [^\n]*Connection refused", mlflow_error(refused.value)), mlflow_error(refused.value)


class FullAfterMetrics:
    """A client of a real store whose disk fills up in the middle of a batch, once: MLflow's sqlite store
    commits a batch's metrics and its tags in two transactions, so the metrics are in and the tags refused."""

    def __init__(self, client):
        self.client, self.filled = client, False

    def __getattr__(self, name):
        return getattr(self.client, name)

    def log_batch(self, run_id, metrics=(), params=(), tags=()):
        if self.filled:
            return self.client.log_batch(run_id, metrics=metrics, params=params, tags=tags)
        self.filled = True
        self.client.log_batch(run_id, metrics=metrics)
        raise MlflowException("(sqlite3.OperationalError) database or disk is full [SQL: INSERT INTO tags ...]")


def test_a_result_replayed_after_a_half_written_batch_is_logged_once(sweep_store):
    """The disk fills between a result's metrics and its tags: the result waits and is replayed once the store
    answers, its metrics once (main: twice, the replay stamped later), its tags delivered."""
    from types import SimpleNamespace

    from tokensweep.tracking.callback import MlflowTrialLogger

    _, tracker, _, child, _ = sweep_store
    logger = MlflowTrialLogger(tracker.tracking_uri, "smoke", tracker.experiment_id, tracker.parent_run_id, describe=None)
    logger.tracker.client = FullAfterMetrics(logger.tracker.client)
    trial = SimpleNamespace(trial_id="trial_0", config={})
    logger.on_trial_result(0, [], trial, {"epoch": 1, "top1": 10.0, "epoch_time_s": 1.0, "device": "cpu"})
    assert logger.pending.waiting == 1  # the store said it is full: the result waits
    assert logger.pending.wait(30) and logger.errors == 0
    assert [(m.step, m.value) for m in tracker.client.get_metric_history(child, "top1")] == [(1, 10.0)]
    assert tracker.client.get_run(child).data.tags["device"] == "cpu"
