"""Storage faults without Ray: a store that is no database or cannot be written, MLflow writes that never
land, a bench stage switched off. The full disks and a corrupted checkpoint under a running sweep:
tests/e2e/reliability/test_rel_storage_full.py.
"""

import re
import subprocess
import time

import pytest
from mlflow.exceptions import MlflowException

from helpers import base_env, CLI, free_port, SWEEPS
from rel_helpers import LOST, drop_read_override
from tokensweep.spec import load_spec



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
