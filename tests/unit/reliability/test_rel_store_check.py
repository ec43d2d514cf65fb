"""How the driver tells that its MLflow store is no longer the sweep's (store_problem), and what its write queue
does then (PendingWrites.lose_store): real sqlite stores, no Ray. The sweep around it: test_rel_store_gone.py."""

import shutil

import pytest
from mlflow.exceptions import MlflowException


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """Two real stores: `ours` with a sweep's parent run, `theirs` with another sweep's."""
    from tokensweep.tracking.tracker import SweepTracker

    made = {}
    for name in ("ours", "theirs"):
        db = tmp_path_factory.mktemp(name) / "mlflow.db"
        tracker = SweepTracker(f"sqlite:///{db}", name)
        tracker.start_parent(tune_path=f"/r/{name}", command="c", tags={}, spec_text="", spec_name="s.toml", resolved={})
        made[name] = (db, tracker)
    return made


def problem(tracker, db):
    from tokensweep.tracking.store import store_problem

    return store_problem(tracker.client, f"sqlite:///{db}", tracker.parent_run_id)


def test_the_sweeps_own_store_has_no_problem(stores):
    db, tracker = stores["ours"]
    assert problem(tracker, db) is None


def test_a_deleted_store_is_named_as_deleted(stores, tmp_path):
    db, tracker = stores["ours"]
    assert problem(tracker, tmp_path / "mlflow.db") == "was deleted mid-sweep"


def test_another_store_in_its_place_is_named_as_replaced(stores, tmp_path):
    _, tracker = stores["ours"]
    theirs, _ = stores["theirs"]
    shutil.copy(theirs, tmp_path / "mlflow.db")
    why = problem(tracker, tmp_path / "mlflow.db")
    assert why == f"was replaced mid-sweep (the sweep's parent run {tracker.parent_run_id} is not in it)"


def test_an_empty_file_in_its_place_is_named(stores, tmp_path):
    _, tracker = stores["ours"]
    (tmp_path / "mlflow.db").write_bytes(b"")  # what a connection opening a deleted store's path leaves
    assert problem(tracker, tmp_path / "mlflow.db").startswith("was deleted or replaced mid-sweep (no such table: runs)")


def test_a_lost_store_keeps_every_later_write_back_and_counts_it(capsys):
    from tokensweep.tracking.store import PendingWrites

    sent, gone = [], {"why": None}

    def write(item):
        if gone["why"]:
            raise MlflowException(f"Run with id=abc not found ({item})")  # not an outage: MLflow answers
        sent.append(item)

    pending = PendingWrites("MLflow at sqlite:///m.db", check_store=lambda: gone["why"])
    pending.submit("log result", write, 1)
    gone["why"] = "was replaced mid-sweep (the sweep's parent run abc is not in it)"
    for item in (2, 3):
        pending.submit("log result", write, item)
    pending.submit("finish trial run", write, "end")
    assert sent == [1] and pending.waiting == 3 and pending.failed == 0  # kept, not failed one by one
    gone["why"] = None  # whatever the store does now, nothing more is sent to it
    pending.poke()
    assert not pending.wait(60) and sent == [1]
    assert pending.drain(60) == 3 and pending.lost == 3
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [
        "tokensweep run: error: MLflow at sqlite:///m.db was replaced mid-sweep (the sweep's parent run abc is not in "
        "it); its writes are no longer sent, and Tune keeps every result: `--resume` against the restored store (or "
        "a new one) records every trial",
        "tokensweep run: error: MLflow at sqlite:///m.db stayed unreachable; 3 write(s) were not recorded (2 x log "
        "result, 1 x finish trial run): those runs are incomplete",
    ]


def test_a_write_that_fails_for_another_reason_is_still_counted_and_skipped():
    from tokensweep.tracking.store import PendingWrites

    def refused(item):
        raise MlflowException("INVALID_PARAMETER_VALUE: bad value")

    pending = PendingWrites("MLflow at sqlite:///m.db", check_store=lambda: None)
    pending.submit("log result", refused, 1)
    assert pending.failed == 1 and pending.waiting == 0 and pending.gone is None
