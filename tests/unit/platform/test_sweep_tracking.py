"""MLflow tracking of sweeps, without Ray: run identity, resume, filtering, failure, concurrency."""

import sqlite3
from contextlib import closing
from pathlib import Path
from urllib.parse import quote

import pytest

from sweep_helpers import metric_steps, run_rows
from tokensweep.tracking.store import default_optuna_storage, resolve_tracking_uri, sqlite_path


def test_tracking_uri_defaults_to_absolute_sqlite(tmp_path):
    assert resolve_tracking_uri(None, environ={}, cwd=str(tmp_path)) == f"sqlite:///{tmp_path}/mlflow.db"
    assert resolve_tracking_uri("sqlite:///x/m.db", environ={}, cwd=str(tmp_path)) == f"sqlite:///{tmp_path}/x/m.db"
    assert resolve_tracking_uri(None, environ={"MLFLOW_TRACKING_URI": "http://h:5000"}) == "http://h:5000"
    assert resolve_tracking_uri("http://a:1", environ={"MLFLOW_TRACKING_URI": "http://h:5000"}) == "http://a:1"
    assert sqlite_path(f"sqlite:///{tmp_path}/m.db") == f"{tmp_path}/m.db"
    assert default_optuna_storage(f"sqlite:///{tmp_path}/m.db") == f"sqlite:///{tmp_path}/optuna.db"
    assert default_optuna_storage("http://h:5000", cwd=str(tmp_path)) == f"sqlite:///{tmp_path}/optuna.db"


ODD_NAMES = ["a b", "a#b", "100%", "a%20b", "q?x=1"]  # each read differently by a URL parser than by a file system


@pytest.mark.parametrize("name", ODD_NAMES)
def test_sqlite_uris_name_the_file_mlflow_opens(name, tmp_path):
    """The path a URI's checks, lock and summary use is the one SQLAlchemy (MLflow's store) opens: the
    URI's path percent-decoded once, up to any '?'; URIs built from paths escape what must be escaped."""
    from sqlalchemy.engine import make_url

    folder = tmp_path / name
    folder.mkdir()
    for uri, path in [
        (resolve_tracking_uri(None, environ={}, cwd=str(folder)), f"{folder}/mlflow.db"),
        (resolve_tracking_uri("sqlite:///runs.db", environ={}, cwd=str(folder)), f"{folder}/runs.db"),
        (default_optuna_storage(f"sqlite:///{quote(str(folder))}/m.db"), f"{folder}/optuna.db"),
        (f"sqlite:///{quote(str(folder))}/m.db", f"{folder}/m.db"),
    ]:
        assert make_url(uri).database == path, uri
        assert sqlite_path(uri) == path, uri


def test_a_store_behind_an_escaped_uri_is_one_file(tmp_path):
    """sqlite:///.../a%20b#c%20d.db: MLflow writes 'a b#c d.db'. The lock and the completeness check
    looked at the literal 'a%20b#c%20d.db' and at 'a b' (sqlite's own URI cut at '#'), leaving empty
    files there; now everything is beside the one store."""
    from tokensweep.tracking.store import is_complete
    from tokensweep.tracking.store import open_store

    client = open_store(f"sqlite:///{tmp_path}/a%20b#c%20d.db")
    assert [e.name for e in client.search_experiments()] == ["Default"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a b#c d.db", "a b#c d.db.lock"]
    assert is_complete(f"{tmp_path}/a b#c d.db")


def _schema(db) -> tuple:
    with closing(sqlite3.connect(db)) as conn:
        # each statement's clauses as a set: MLflow's own migrations order a table's constraints differently
        # from one process to the next (Python's hash seed), two stores it builds alike included
        tables = sorted((kind, name, frozenset(line.strip().rstrip(",") for line in (sql or "").splitlines()))
                        for kind, name, sql in conn.execute("select type, name, sql from sqlite_master where name not like 'sqlite_%'"))  # fmt: skip
        version = conn.execute("select version_num from alembic_version").fetchall()
        default = conn.execute("select name, artifact_location from experiments").fetchall()
    return tables, version, default


def test_a_new_store_copied_from_the_cached_tables_is_the_store_mlflow_builds(tmp_path, monkeypatch):
    """The second new store is a copy of MLflow's tables cached by the first, not migrated again, and equal to
    one MLflow builds itself: same tables and schema version, its own Default experiment and artifact root."""
    import mlflow.store.db.utils
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    from tokensweep.tracking.store import ensure_sqlite_store, migrated_template

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    for folder in ("a", "b", "c", "mlflow"):
        (tmp_path / folder).mkdir()
    ensure_sqlite_store(str(tmp_path / "a" / "mlflow.db"))
    assert migrated_template() == str(next((tmp_path / "cache" / "tokensweep").glob("mlflow-*-tables.db")))

    def no_migration(engine):
        raise AssertionError("migrated again")

    monkeypatch.setattr(mlflow.store.db.utils, "_initialize_tables", no_migration)
    ensure_sqlite_store(str(tmp_path / "b" / "mlflow.db"))
    monkeypatch.undo()
    SqlAlchemyStore(f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}", (tmp_path / "mlflow" / "mlartifacts").as_uri()).engine.dispose()
    tables, version, default = _schema(tmp_path / "b" / "mlflow.db")
    assert (tables, version) == _schema(tmp_path / "mlflow" / "mlflow.db")[:2] == _schema(tmp_path / "a" / "mlflow.db")[:2]
    assert default == [("Default", (tmp_path / "b" / "mlartifacts" / "0").as_uri())]
    # cached tables this MLflow will not open (a schema it does not know): it builds the store, and the cache again
    template = Path(migrated_template())
    with closing(sqlite3.connect(template)) as conn, conn:
        conn.execute("update alembic_version set version_num = 'not-a-revision'")
    ensure_sqlite_store(str(tmp_path / "c" / "mlflow.db"))
    assert _schema(tmp_path / "c" / "mlflow.db")[:2] == (tables, version) and not template.exists()


def test_split_result_keeps_trial_values_and_drops_tune_bookkeeping():
    from tokensweep.tracking.tracker import split_result
    from tokensweep.tracking.callback import TUNE_KEYS

    result = {
            "epoch": 3, "top1": 50.0, "images_per_sec": 10.5, "params": 100, "device": "cpu: X", "threads": 2,
            "gpu_shared": False, "training_iteration": 3, "time_total_s": 1.0, "timestamp": 5, "done": True,
            "pid": 7, "hostname": "h", "node_ip": "1.2.3.4", "config": {"a": 1}, "config/a": 1, "trial_id": "t",
            "checkpoint_dir_name": "c", "date": "d", "time_this_iter_s": 1.0, "iterations_since_restore": 1,
            "time_since_restore": 1.0, "top5": float("nan"),
        }  # fmt: skip
    metrics, tags = split_result({k: v for k, v in result.items() if k not in TUNE_KEYS})
    assert metrics == {"top1": 50.0, "images_per_sec": 10.5, "params": 100.0}
    assert tags == {"device": "cpu: X", "threads": "2", "gpu_shared": "false"}


def test_retry_retries_only_lock_errors():
    from mlflow.exceptions import MlflowException

    from tokensweep.tracking.store import retry

    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise MlflowException("(sqlite3.OperationalError) database is locked")
        return "ok"

    assert retry(flaky, base_delay=0.001) == "ok" and len(calls) == 3
    with pytest.raises(ValueError):
        retry(lambda: (_ for _ in ()).throw(ValueError("no")), base_delay=0.001)


def test_parent_and_child_runs_are_reused_never_duplicated(tmp_path):
    from tokensweep.tracking.tracker import SweepTracker

    db = tmp_path / "mlflow.db"
    uri = f"sqlite:///{db}"
    t = SweepTracker(uri, "sw")
    kwargs = dict(
        tune_path="/r/sw", command="tokensweep run s.toml", tags={"tokensweep.search": "grid"},
        spec_text="[sweep]\nname='sw'\n", spec_name="s.toml", resolved={"sweep": {"name": "sw"}},
    )  # fmt: skip
    parent = t.start_parent(**kwargs)
    a = t.start_child("abc_00000", "vit_tiny_patch", {"model": "vit_tiny_patch", "epochs": 2}, {"gpu_shared": False})
    assert t.start_child("abc_00000", "vit_tiny_patch", {}, {}) == a
    t.log_result(a, {"top1": 10.0, "device": "cpu"}, step=1)  # as the Tune callback passes it, without Tune's keys
    b = t.start_child("abc_00001", "vit_tiny_conv", {"model": "vit_tiny_conv"}, {})
    t.end_child(a, "FINISHED")

    # the driver dies; a new one resumes the same Tune experiment
    t2 = SweepTracker(uri, "sw")
    assert t2.start_parent(**kwargs, resume=True) == parent
    assert t2.start_child("abc_00000", "vit_tiny_patch", {"model": "vit_tiny_patch"}, {}) == a
    assert t2.start_child("abc_00001", "vit_tiny_conv", {}, {}) == b
    t2.end_child(a, "FINISHED")
    t2.end_child(b, "FAILED", "NonFiniteLoss: non-finite training loss (NaN or inf) in epoch 2 by step 10")
    c = t2.start_child("abc_00002", "vit_tiny_supertoken", {}, {})
    assert t2.close_running_children("KILLED") == [("vit_tiny_supertoken", 0)]  # (run name, epoch it reached)
    t2.end_parent("FAILED", {"tokensweep.failed_trials": 1})

    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    runs = {r.info.run_id: r for r in client.search_runs([t.experiment_id])}
    assert set(runs) == {parent, a, b, c}
    assert runs[parent].info.status == "FAILED" and runs[parent].data.tags["tokensweep.role"] == "sweep"
    assert runs[parent].data.tags["tokensweep.resumes"] == "1"
    assert runs[a].info.status == "FINISHED" and runs[a].data.tags["mlflow.parentRunId"] == parent
    assert runs[a].data.tags["trial_id"] == "abc_00000" and runs[a].info.run_name == "vit_tiny_patch"
    assert runs[a].data.metrics == {"top1": 10.0} and runs[a].data.tags["device"] == "cpu"
    assert runs[a].data.params == {"model": "vit_tiny_patch", "epochs": "2"}
    assert runs[b].info.status == "FAILED" and runs[b].data.tags["failure_reason"].startswith("NonFiniteLoss")
    assert runs[c].info.status == "KILLED" and runs[c].data.tags["tokensweep.interrupted_at_epoch"] == "0"
    artifacts = [f.path for f in client.list_artifacts(parent, "spec")]
    assert artifacts == ["spec/resolved.json", "spec/s.toml"]
    assert client.get_experiment(t.experiment_id).artifact_location == (tmp_path / "mlartifacts" / "sw").as_uri()


def test_an_epoch_caught_up_on_resume_follows_the_last_one_in_mlflows_history(tmp_path):
    """Epoch 1 logged live (its arrival, to the millisecond); after a --resume, epoch 2 caught up from Tune's saved
    results with Tune's whole-second time, earlier than that: MLflow's history still runs 1, 2."""
    from tokensweep.tracking.tracker import SweepTracker

    db = tmp_path / "mlflow.db"
    kwargs = dict(tune_path="/r/sw", command="tokensweep run s.toml", tags={}, spec_text="", spec_name="s.toml", resolved={})
    first = SweepTracker(f"sqlite:///{db}", "sw")
    first.start_parent(**kwargs)
    run = first.start_child("abc_00000", "vit_tiny_patch", {}, {})
    first.log_result(run, {"epoch_time_s": 1.0, "top1": 10.0}, step=1, timestamp_ms=1_700_000_012_700)
    resumed = SweepTracker(f"sqlite:///{db}", "sw")
    resumed.start_parent(**kwargs, resume=True)
    assert resumed.start_child("abc_00000", "vit_tiny_patch", {}, {}) == run and resumed.last_logged_step(run) == 1
    resumed.log_result(run, {"epoch_time_s": 1.0, "top1": 20.0}, step=2, timestamp_ms=1_700_000_012_000)
    assert metric_steps(db, run, "top1") == [1, 2]


def test_starting_over_closes_the_old_parent_and_its_children(tmp_path):
    from tokensweep.tracking.tracker import SweepTracker

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    kwargs = dict(tune_path="/r/sw", command="c", tags={}, spec_text="", spec_name="s.toml", resolved={})
    old = SweepTracker(uri, "sw")
    old_parent = old.start_parent(**kwargs)
    child = old.start_child("t_00000", "a", {}, {})  # then the driver is killed: both stay RUNNING
    new = SweepTracker(uri, "sw")
    new_parent = new.start_parent(**kwargs)  # --fresh
    assert new_parent != old_parent
    status = {r[0]: r[1] for r in run_rows(tmp_path / "mlflow.db")}
    assert status[old_parent] == "KILLED" and status[child] == "KILLED" and status[new_parent] == "RUNNING"


def _resumable_tracker(tmp_path):
    from tokensweep.tracking.tracker import SweepTracker

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    kwargs = dict(
        tune_path="/r/sw", command="tokensweep run s.toml", tags={}, spec_text="", spec_name="s.toml", resolved={},
    )  # fmt: skip
    t = SweepTracker(uri, "sw")
    t.start_parent(**kwargs)
    resumed = SweepTracker(uri, "sw")
    return t, lambda: (resumed.start_parent(**kwargs, resume=True), resumed)[1]


def _epochs_logged(tracker, run_id, epochs):
    for step in range(1, epochs + 1):
        tracker.log_result(run_id, {"top1": 10.0 * step, "epoch_time_s": 1.0}, step)


def test_a_resumed_sweep_knows_which_trial_runs_are_done(tmp_path):
    """FINISHED with every epoch (or stopped early by the scheduler, which says so): done; anything else not."""
    from tokensweep.sweep.driver import FinishedTrials

    t, resume = _resumable_tracker(tmp_path)
    runs = {}
    for trial_id, variant, epochs, logged, status in [
        ("done", 0, 2, 2, "FINISHED"), ("short", 1, 3, 2, "FINISHED"), ("running", 2, 2, 2, None), ("failed", 3, 2, 2, "FAILED"),
        ("asha", 4, 4, 1, "FINISHED"),
    ]:  # fmt: skip
        runs[trial_id] = t.start_child(trial_id, trial_id, {"epochs": epochs}, {"tokensweep.variant": variant})
        _epochs_logged(t, runs[trial_id], logged)
        if trial_id == "asha":
            t.tag(runs[trial_id], **{"tokensweep.stopped_early": True})
        if status:
            t.end_child(runs[trial_id], status)
    finished = FinishedTrials.read(resume())
    assert set(finished.final) == {"done", "asha"}
    assert finished.lookup("done", None) == {"top1": 20.0, "epoch_time_s": 1.0, "epoch": 2}  # what Tune is told again
    assert finished.lookup("a-new-id", 0) == finished.lookup("done", 0)  # a grid trial Tune made again under a new id
    assert finished.lookup("short", 1) is None and finished.lookup("running", 2) is None and finished.lookup("x", 9) is None


def test_a_grid_trial_tune_lost_gets_its_unfinished_run_back(tmp_path):
    """A driver killed before Tune's next snapshot: Tune makes the trial again under a new id. Its run is
    found by its variant and carries on (one run per trial), its epochs logged once."""
    t, resume = _resumable_tracker(tmp_path)
    old = t.start_child("old-id", "vit_tiny_conv", {"epochs": 3}, {"tokensweep.variant": 1})
    _epochs_logged(t, old, 1)
    done = t.start_child("done-id", "vit_tiny_patch", {"epochs": 1}, {"tokensweep.variant": 0})
    t.end_child(done, "FINISHED")

    r = resume()
    assert r.start_child("new-id", "vit_tiny_conv", {"epochs": 3}, {"tokensweep.variant": 1}) == old
    assert r.last_logged_step(old) == 1  # epoch 1 is not logged again
    tags = r.tags_of(old)
    assert tags["trial_id"] == "new-id" and tags["tokensweep.previous_trial_id"] == "old-id"
    assert r.find_child("new-id") == old
    # a FINISHED run is never taken over (a resumed sweep leaves it alone altogether)
    assert r.start_child("another-id", "vit_tiny_patch", {"epochs": 1}, {"tokensweep.variant": 0}) != done
