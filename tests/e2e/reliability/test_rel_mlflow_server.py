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

import re
import time
from pathlib import Path

import pytest

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
        wait_for(lambda: "is unreachable" in log.read_text(), 120, "the driver to notice the outage", alive=alive)
        server.start()
        timeline["back"] = time.monotonic()
        proc.wait(timeout=400)
        timeline["end"] = time.monotonic()
    finally:
        if proc.poll() is None:
            stop_process_group(proc)
    yield dict(root=root, server=server, proc=proc, output=log.read_text(), timeline=timeline)


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


# --- an epoch reported twice is logged once -----------------------------------------------------------------


