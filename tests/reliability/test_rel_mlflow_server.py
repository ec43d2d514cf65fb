"""A real MLflow tracking server that goes away mid-sweep and comes back; and no secret reaches MLflow.

`mlflow server --backend-store-uri sqlite:///... --host 127.0.0.1 --port P` is started by the test.
The sweep logs to it through a URI with user:password@ (and MLFLOW_TRACKING_PASSWORD set in its
environment). Once both trials have recorded their first epoch, the server is stopped, kept down while
the trials go on (and finish), then started again on the same port and database. The driver keeps
the writes it could not make, in order, and delivers them when the server answers (PendingWrites in
tokensweep.tracking.store): every epoch of every trial arrives, every run ends FINISHED, no run
is duplicated. If the server never came back, the sweep says how many writes were lost and exits 1
(tested without a server below, with a short wait).
"""

import collections
import re
import time
from pathlib import Path

import pytest
from mlflow.exceptions import MlflowException

from rel_helpers import MlflowServer, TINY_TRIAL, sets, start_cli, stop_process_group, wait_for

SPEC = """
[sweep]
name = "outage"
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
[tracking]
system_metrics = false
"""
PASSWORD = "pw-Zq8x7-never-logged"
ENV_SECRET = "env-Kd93-never-logged"
EPOCHS = 5


def _client(url):
    from mlflow.tracking import MlflowClient

    return MlflowClient(url)


def _runs(url, experiment="outage"):
    client = _client(url)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], max_results=1000) if exp else []
    parents = [r for r in runs if r.data.tags.get("tokensweep.role") == "sweep"]
    children = [r for r in runs if r.data.tags.get("tokensweep.role") == "trial"]
    return parents, children


def _epochs_recorded(server) -> dict:
    try:
        _, children = _runs(server.url)
        return {c.info.run_name: c.data.metrics.get("top1") is not None for c in children}
    except Exception:
        return {}


@pytest.fixture(scope="module")
def outage(tmp_path_factory, ray_head):
    root = tmp_path_factory.mktemp("outage")
    server = MlflowServer(root)
    try:
        yield from _run_outage(root, server, ray_head)
    finally:
        server.stop()  # also when the sweep part failed


def _run_outage(root, server, ray_head):
    server.start()
    uri = f"http://alice:{PASSWORD}@127.0.0.1:{server.port}"
    env = {**ray_head.env, "MLFLOW_TRACKING_USERNAME": "alice", "MLFLOW_TRACKING_PASSWORD": ENV_SECRET}
    spec = root / "outage.toml"
    spec.write_text(SPEC)
    overrides = TINY_TRIAL + [f"trial.epochs={EPOCHS}", "trial.tiny_train_per_class=120"]
    # no --quiet: Tune's progress output is part of what must not show the password
    args = ["run", spec, "--address", ray_head.address, "--tracking-uri", uri, "--storage", root / "ray_results", *sets(overrides)]
    proc, log = start_cli(args, root, env)
    timeline = {}
    try:
        alive = lambda: proc.poll() is None  # noqa: E731
        wait_for(lambda: (r := _epochs_recorded(server)) and len(r) == 2 and all(r.values()), 300, "both trials' first epoch", alive=alive)
        timeline["stop"] = time.monotonic()
        server.stop()
        timeline["stopped"] = time.monotonic()
        time.sleep(4)  # the trials go on without the server
        server.start()
        timeline["back"] = time.monotonic()
        proc.wait(timeout=400)
        timeline["end"] = time.monotonic()
    finally:
        if proc.poll() is None:
            stop_process_group(proc)
    yield dict(root=root, server=server, proc=proc, output=log.read_text(), timeline=timeline)


@pytest.mark.slow
def test_the_sweep_finishes_and_nothing_logged_during_the_outage_is_lost(outage):
    out = outage["output"]
    assert outage["proc"].returncode == 0, out[-5000:]
    assert "is unreachable" in out and "answers again; every waiting write delivered" in out, out[-5000:]
    assert "were not recorded" not in out and "MLflow write(s) failed" not in out
    parents, children = _runs(outage["server"].url)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert "tokensweep.tracking_errors" not in parents[0].data.tags
    assert sorted(c.info.run_name for c in children) == ["vit_tiny_conv", "vit_tiny_patch"]  # one run each
    client = _client(outage["server"].url)
    for child in children:
        assert child.info.status == "FINISHED"
        for key in ("top1", "train_loss", "val_loss", "epoch_time_s"):
            steps = [m.step for m in client.get_metric_history(child.info.run_id, key)]
            assert sorted(steps) == list(range(1, EPOCHS + 1)), (child.info.run_name, key, steps)  # none lost, none twice
        assert "images_per_sec" in child.data.metrics  # the last report, sent during the outage
    t = outage["timeline"]
    print(f"\n[outage] server down {t['back'] - t['stop']:.1f}s; sweep ended {t['end'] - t['back']:.1f}s after it came back")


def _scan(text: str, where: str, found: list) -> None:
    for secret in (PASSWORD, ENV_SECRET):
        if secret in text:
            found.append(f"{where}: {secret}")


@pytest.mark.slow
def test_no_secret_in_mlflow_params_tags_artifacts_or_output(outage, tmp_path):
    found = []
    _scan(outage["output"], "tokensweep run output", found)
    client = _client(outage["server"].url)
    parents, children = _runs(outage["server"].url)
    for run in parents + children:
        data = run.data
        _scan(repr(data.params) + repr(data.tags) + repr(sorted(data.metrics)) + repr(run.info), f"run {run.info.run_name}", found)
    (parent,) = parents
    command = parent.data.tags["tokensweep.command"]
    assert re.search(r"--tracking-uri http://alice:\*\*\*@127\.0\.0\.1:\d+", command), command
    artifacts = [a.path for a in client.list_artifacts(parent.info.run_id, "spec")]
    assert artifacts, "the parent run logs its spec"
    for path in artifacts:
        local = client.download_artifacts(parent.info.run_id, path, str(tmp_path))
        _scan(Path(local).read_text(), f"artifact {path}", found)
    # Tune's own trial files (configs, results, errors) in its storage
    for path in (outage["root"] / "ray_results").rglob("*"):
        if path.is_file() and path.suffix in (".json", ".csv", ".txt", ".log"):
            _scan(path.read_text(errors="replace"), str(path), found)
    assert found == []


# --- the server never comes back: the sweep says so --------------------------------------------------------


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


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


# --- an epoch reported twice is logged once -----------------------------------------------------------------


class FakeTrial:
    def __init__(self, trial_id, name, values):
        from tokensweep.payload import Platform, grid_config

        self.trial_id, self.name = trial_id, name
        self.config = grid_config(0, name, values, Platform("sqlite:////x.db", "dedup", False, 10.0, ()))
        self.last_result = {}

    def __str__(self):
        return self.name


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
    trial = FakeTrial("t_00000", "vit_tiny_patch", {"model": "vit_tiny_patch", "epochs": 3, "warmup_epochs": 0.0})

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
