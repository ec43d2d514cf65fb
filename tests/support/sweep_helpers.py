"""Helpers of the end-to-end tests: a Ray head, MLflow readers, a stand-in for Tune's trials.

Ray auth in tests is deliberate: token authentication (Ray's default for new local clusters since
2.59) with a token of the test session's own (RAY_AUTH_TOKEN_PATH), so tests neither need nor
touch ~/.ray/auth_token, and every Ray process of a test agrees on the mode.
"""

import os
import secrets
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import closing
from pathlib import Path

import pytest

from helpers import BIN, base_env, free_port


@pytest.fixture(scope="session")
def ray_token_env(tmp_path_factory) -> dict:
    """Environment for anything that starts or joins a test Ray: token auth, the session's own token."""
    token = tmp_path_factory.mktemp("ray-auth") / "auth_token"
    token.write_text(secrets.token_hex(32))
    token.chmod(0o600)
    return base_env(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=token)


class RayHead:
    """`ray start --head --block` in the foreground: stopping it (SIGTERM) stops this head only.

    `ray stop` would stop every Ray on the machine, including other people's. Only the processes sweeps use,
    unless a test asks for the head as documented (`documented`: the dashboard, for the Jobs API of `ray job
    submit`, the log monitor and the autoscaler's monitor). Without them a head costs less CPU: idle, the
    dashboard ~40% more; the log monitor reads every worker's log files (tokensweep's drivers do not print
    them, RAY_LOG_TO_DRIVER=0), which cost one long-lived head 65 CPU-s of a CI run's ~4,100; a fixed-size
    test cluster has nothing to autoscale.
    """

    def __init__(self, env: dict, num_cpus: int = 2, num_gpus: int = 0, documented: bool = False):
        self.port, self.dashboard_port = free_port(), free_port()
        self.temp_dir = tempfile.mkdtemp(prefix="tsray", dir="/tmp")  # short: Ray's socket paths are length-limited
        self.env = env
        self.log = open(Path(self.temp_dir, "ray-start.log"), "w")
        cmd = [
            str(BIN / "ray"), "start", "--head", "--block",
            f"--port={self.port}", "--node-ip-address=127.0.0.1",
            "--dashboard-host=127.0.0.1", f"--dashboard-port={self.dashboard_port}", f"--include-dashboard={str(documented).lower()}",
            f"--ray-client-server-port={free_port()}", f"--dashboard-agent-listen-port={free_port()}",
            f"--num-cpus={num_cpus}", f"--num-gpus={num_gpus}", f"--temp-dir={self.temp_dir}", "--disable-usage-stats",
        ]  # fmt: skip
        if not documented:
            cmd += ["--include-log-monitor=false", "--no-monitor"]
        self.proc = subprocess.Popen(cmd, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        self.address = f"127.0.0.1:{self.port}"
        self.dashboard = f"http://127.0.0.1:{self.dashboard_port}" if documented else None
        self._wait_ready()

    def _wait_ready(self, timeout=120):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ray start exited {self.proc.returncode}: {Path(self.log.name).read_text()[-3000:]}")
            if self._answers():
                return
            time.sleep(0.5)
        raise RuntimeError("Ray head did not come up")

    def _answers(self) -> bool:
        """Up: the job API answers (401 without a token also means up), or without a dashboard, `ray start` has
        said so (it does once its processes run, before it blocks)."""
        if self.dashboard is None:
            return "Ray runtime started" in Path(self.log.name).read_text()
        try:
            urllib.request.urlopen(f"{self.dashboard}/api/version", timeout=2)
        except urllib.error.HTTPError:
            return True
        except OSError:
            return False
        return True

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # the session we started: ray start and its children
            try:  # a moment for its children; `ray start --block` itself ignores SIGTERM (still up 30 s later)
                self.proc.wait(timeout=1)
            except subprocess.TimeoutExpired:
                pass
        try:  # whatever of that session is still shutting down gracefully: a test head holds nothing to save
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=30)
        self.log.close()
        shutil.rmtree(self.temp_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def ray_head(ray_token_env):
    head = RayHead(ray_token_env)
    yield head
    head.stop()


# --- reading MLflow ---------------------------------------------------------------------------------


def sweep_runs(db: Path, experiment: str) -> tuple[list, list]:
    """(parents, children) of a sweep's experiment, as MLflow Run objects."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{db}")
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"no MLflow experiment {experiment!r} in {db}"
    runs = client.search_runs([exp.experiment_id], max_results=10_000)
    parents = [r for r in runs if r.data.tags.get("tokensweep.role") == "sweep"]
    children = [r for r in runs if r.data.tags.get("tokensweep.role") == "trial"]
    return parents, children


def metric_steps(db: Path, run_id: str, key: str) -> list[int]:
    """The steps of a metric's history in the order MLflow's get_metric_history gives them, read with
    sqlite itself: an MlflowClient per call costs a second (engine and schema check), and tests ask often."""
    sql = "SELECT step FROM metrics WHERE run_uuid = ? AND key = ? ORDER BY timestamp, step, value"
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)) as conn:
        return [step for (step,) in conn.execute(sql, (run_id, key))]


def poll_db(db: Path, sql: str, params: tuple = ()) -> list[tuple]:
    """Rows of a read-only query on a sweep's MLflow sqlite file while the sweep writes it; [] if the file
    is not there yet or is busy (cheap enough to poll)."""
    if not db.exists():
        return []
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as conn:
            return conn.execute(sql, params).fetchall()
    except sqlite3.Error:
        return []


def trial_statuses(db: Path) -> list[str]:
    """Child-run statuses straight from the sqlite file."""
    rows = poll_db(
        db,
        "select r.status from runs r join tags t on t.run_uuid = r.run_uuid "
        "where t.key = 'tokensweep.role' and t.value = 'trial'",
    )
    return [r[0] for r in rows]


CHILD_PARAMS = {"model", "embedding", "backbone", "img_size", "epochs", "batch_size", "lr", "seed", "dataset"}
CPU_FINAL_METRICS = {"top1", "top5", "params", "embed_params", "flops", "images_per_sec", "train_images_per_sec"}
TUNE_KEYS = {"training_iteration", "time_total_s", "time_this_iter_s", "timestamp", "pid", "done", "iterations_since_restore"}


def check_child_schema(run, db: Path) -> None:
    """One trial's child run has the params, metrics and tags the platform promises."""
    from trials.models import all_knobs, registered_embeddings

    params, metrics, tags = run.data.params, run.data.metrics, run.data.tags
    assert CHILD_PARAMS <= set(params), set(params)
    mine = {k.name for k in registered_embeddings()[params["embedding"]].knobs}
    assert mine <= set(params)  # every knob of its embedding, default or not
    assert not (set(all_knobs()) - mine) & set(params)  # none its embedding does not have
    assert CPU_FINAL_METRICS <= set(metrics), set(metrics)
    assert not TUNE_KEYS & set(metrics), TUNE_KEYS & set(metrics)
    for key in ("device", "precision", "torch_version", "gpu_shared", "trial_id", "mlflow.parentRunId", "ray_node_id"):
        assert tags.get(key), (key, tags)
    epochs = int(params["epochs"])
    assert metric_steps(db, run.info.run_id, "top1") == list(range(1, epochs + 1))
    for key in ("train_loss", "val_loss", "top5", "lr"):
        assert len(metric_steps(db, run.info.run_id, key)) == epochs, key


class FakeTrial:
    """What Tune's callbacks, the sweep view and the summary read of a trial (Tune's own Trial needs a
    running experiment)."""

    def __init__(self, trial_id: str, name: str, values: dict, platform, index: int = 0, status: str = "PENDING",
                 last_result: dict | None = None):  # fmt: skip
        from tokensweep.payload import grid_config

        self.trial_id, self.name, self.status = trial_id, name, status
        self.config = grid_config(index, name, values, platform)
        self.last_result = last_result or {}
        self.num_failures = 0

    def __str__(self):
        return self.name


# --- sweeps of many trivial trials -----------------------------------------------------------------


TRIVIAL_TRIAL = """\
[trial]
backbone = "tiny"
embedding = "patch"
tiny_classes = 2
tiny_train_per_class = 4
tiny_val_per_class = 2
batch_size = 8
epochs = 1
max_steps_per_epoch = 1
measure = false
workers = 0
randaugment = false
mixup = 0.0
cutmix = 0.0
random_erasing = 0.0
"""


def grid_spec(name: str, n: int) -> str:
    """A sweep of N trivial trials (seeds 0..N-1): what grows with the number of trials, and nothing else."""
    return f'[sweep]\nname = "{name}"\n\n{TRIVIAL_TRIAL}\n[grid]\nseed = {list(range(n))}\n'


def run_rows(db: Path, where: str = "") -> list[tuple]:
    """(run_uuid, status, name) of every MLflow run in the sqlite file DB, straight from its table."""
    with sqlite3.connect(db) as conn:
        return conn.execute(f"select run_uuid, status, name from runs {where}").fetchall()
