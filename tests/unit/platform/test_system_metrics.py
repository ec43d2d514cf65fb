"""A trial's system-metrics monitor on a real sqlite MLflow store: it finds the run the driver creates
late, and a trial that ends within one sampling interval still has its sample."""

import sqlite3
import threading
import time

from mlflow import MlflowClient

from tokensweep.tracking.system_metrics import start_system_metrics


def system_steps(db, run_id) -> list[int]:
    with sqlite3.connect(db) as con:
        rows = con.execute("select distinct step from metrics where run_uuid = ? and key like 'system/%'", (run_id,))
        return sorted(step for (step,) in rows)


def test_a_trial_shorter_than_one_interval_keeps_one_sample(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(uri)
    run = client.create_run(client.create_experiment("sm"), tags={"trial_id": "t1"})
    monitor = start_system_metrics(uri, "t1", "sm", 5.0)  # MLflow's loop would publish after 5 s
    time.sleep(0.3)
    monitor.finish()
    assert system_steps(tmp_path / "mlflow.db", run.info.run_id) == [0]


def test_the_monitor_waits_for_the_run_the_driver_creates_later(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(uri)
    experiment = client.create_experiment("sm")
    later = threading.Timer(1.5, lambda: created.append(client.create_run(experiment, tags={"trial_id": "t2"})))
    created = []
    later.start()
    monitor = start_system_metrics(uri, "t2", "sm", 5.0)  # returns once the run exists
    assert monitor is not None and created
    monitor.finish()
    assert system_steps(tmp_path / "mlflow.db", created[0].info.run_id) == [0]
