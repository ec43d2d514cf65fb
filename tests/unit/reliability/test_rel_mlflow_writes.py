"""Writes MLflow does not take: kept in order while its server is unreachable and counted when lost
(PendingWrites in tokensweep.tracking.store), other errors counted and not retried, and an epoch a
restarted trial reports again logged once. The real server going away mid-sweep: the end-to-end
test_rel_mlflow_server.py.
"""

import collections

from mlflow.exceptions import MlflowException

from helpers import Clock
from sweep_helpers import FakeTrial
from tokensweep.payload import Platform


def test_pending_writes_keep_order_and_report_what_is_lost(capsys):
    from tokensweep.tracking.store import PendingWrites

    clock = Clock()
    pending = PendingWrites("MLflow at http://bob:***@h:1", retry_every_s=2, clock=clock, sleep=clock.sleep)
    delivered, down = [], {"value": False}

    def write(item):
        if down["value"]:
            raise MlflowException(
                "API request to http://bob:never-logged-pw@h:1/api/2.0/mlflow/runs/log-batch failed with exception "
                "HTTPConnectionPool(host='h', port=1): Max retries exceeded (Caused by NewConnectionError(... "
                "[Errno 111] Connection refused))"
            )
        delivered.append(item)

    pending.submit("log result", write, 1)
    down["value"] = True
    for item in (2, 3, 4):
        pending.submit("log result", write, item)
        clock.now += 0.5
    assert delivered == [1] and pending.waiting == 3
    down["value"] = False
    pending.submit("finish trial run", write, "end")  # arrives after the waiting results, never before
    clock.now += 2
    pending.poke()
    assert delivered == [1, 2, 3, 4, "end"] and pending.waiting == 0
    assert pending.delivered_late == 4 and pending.lost == 0 and pending.failed == 0
    err = capsys.readouterr().err
    assert "is unreachable" in err and "answers again" in err
    assert "never-logged-pw" not in err  # the password in MLflow's own message is redacted

    down["value"] = True
    pending.submit("log result", write, 5)
    pending.submit("finish trial run", write, "end-2")
    assert pending.drain(timeout_s=10) == 2  # the server never came back within the wait
    assert pending.lost == 2 and clock.now >= 10
    err = capsys.readouterr().err
    assert "2 write(s) were not recorded (1 x log result, 1 x finish trial run)" in err


def test_other_errors_are_counted_not_retried(capsys):
    from tokensweep.tracking.store import PendingWrites

    calls = collections.Counter()

    def refused(item):
        calls[item] += 1
        raise MlflowException("INVALID_PARAMETER_VALUE: Changing param values is not allowed")

    pending = PendingWrites()
    pending.submit("start trial run", refused, "a")
    pending.submit("start trial run", refused, "b")
    assert pending.failed == 2 and pending.waiting == 0 and calls == {"a": 1, "b": 1}


def test_epochs_reported_again_after_a_restart_are_logged_once(tmp_path):
    """A trial restarted from an older checkpoint (worker killed before Tune registered its newest one,
    or a driver resumed from an older experiment snapshot) reports epochs MLflow already has."""
    from mlflow.tracking import MlflowClient

    from tokensweep.tracking.tracker import SweepTracker
    from tokensweep.tracking.callback import MlflowTrialLogger

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    tracker = SweepTracker(uri, "dedup")
    parent = tracker.start_parent(tune_path="/r/dedup", command="c", tags={}, spec_text="", spec_name="s.toml", resolved={})
    describe = lambda payload: ({"model": payload.values["model"]}, {})  # noqa: E731
    values = {"model": "vit_tiny_patch", "epochs": 3, "warmup_epochs": 0.0}
    trial = FakeTrial("t_00000", "vit_tiny_patch", values, Platform("sqlite:////x.db", "dedup", False, 10.0, ()))

    def report(logger, epoch, top1):
        logger.on_trial_result(0, [], trial, {"epoch": epoch, "top1": top1, "epoch_time_s": 1.0, "training_iteration": epoch})

    logger = MlflowTrialLogger(uri, "dedup", tracker.experiment_id, parent, describe)
    logger.on_trial_start(0, [], trial)
    report(logger, 1, 10.0)
    report(logger, 2, 20.0)
    report(logger, 1, 11.0)  # the restarted trial, from scratch
    report(logger, 2, 21.0)
    again = MlflowTrialLogger(uri, "dedup", tracker.experiment_id, parent, describe)  # a new driver (--resume)
    again.on_trial_start(0, [], trial)
    report(again, 2, 22.0)
    report(again, 3, 30.0)
    assert logger.errors == again.errors == 0

    client = MlflowClient(uri)
    (run,) = [r for r in client.search_runs([tracker.experiment_id]) if r.data.tags.get("tokensweep.role") == "trial"]
    history = [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, "top1")]
    assert sorted(history) == [(1, 10.0), (2, 20.0), (3, 30.0)]
