"""MLflow tracking of sweeps, without Ray: processes writing one sqlite store at once (the rest of
tracking: tests/unit/platform/test_sweep_tracking.py)."""

import multiprocessing

from sweep_helpers import run_rows


def test_concurrent_writers_on_sqlite_do_not_fail(tmp_path):
    """Processes writing one sqlite store at once (as trials' system-metric monitors do) all succeed.

    (MLflow's sqlite sessions wait up to 20 s for the lock; RetryingClient covers what still fails
    at once, e.g. a read transaction that must upgrade to a write.)
    """
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    MlflowClient(uri).create_experiment("busy")
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_hammer, args=(uri, w, 15, queue)) for w in range(4)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=240) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert all(kind == "ok" for kind, _ in results), results
    assert len(run_rows(tmp_path / "mlflow.db", "where status = 'FINISHED'")) == 4


def _hammer(uri: str, worker: int, n: int, queue) -> None:
    try:
        from mlflow.entities import Metric

        from tokensweep.tracking.store import RetryingClient

        client = RetryingClient(uri)
        exp = client.get_experiment_by_name("busy")
        run = client.create_run(exp.experiment_id, run_name=f"w{worker}")
        for step in range(n):
            client.log_batch(run.info.run_id, metrics=[Metric(f"m{k}", float(step), 0, step) for k in range(5)])
        client.set_terminated(run.info.run_id)
        queue.put(("ok", worker))
    except Exception as err:  # pragma: no cover - reported below
        queue.put(("error", f"{type(err).__name__}: {err}"))
