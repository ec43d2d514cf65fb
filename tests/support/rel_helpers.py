"""Helpers of the reliability tests: data sets with faults, a real MLflow server, process-tree probes.

Everything started here is started by the test and stopped by process group or PID, never by name
(other Ray and MLflow instances may run on the same machine).
"""

import contextlib
import errno
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest

from helpers import BIN, CLI, free_port
from sweep_helpers import poll_db

TINY_TRIAL = [  # TrialConfig values of a trial that takes a second or two on one CPU thread
    "trial.model=vit_tiny_patch", "trial.epochs=1", "trial.tiny_train_per_class=20", "trial.tiny_val_per_class=5",
    "trial.batch_size=32", "trial.warmup_epochs=0.0", "trial.bench_steps=1", "trial.bench_batch=8",
]  # fmt: skip

# what the sweep says of MLflow writes it could not make
LOST = r"stayed unreachable; \d+ write\(s\) were not recorded \(.*\): those runs are incomplete"


def sets(items) -> list[str]:
    """['a=1', 'b=2'] -> ['--set', 'a=1', '--set', 'b=2']"""
    out = []
    for item in items:
        out += ["--set", item]
    return out


def wait_for(predicate, timeout: float, what: str, interval: float = 0.2, alive=None):
    """Poll until predicate() is truthy (returns it); `alive()` False or the deadline fails the test."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if alive is not None and not alive():
            raise AssertionError(f"gave up waiting for {what}: the process under test ended")
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


# --- a sweep to interrupt -----------------------------------------------------------------------------------

# a [trial] of a tiny trial on one CPU thread, less its epochs and training images
TINY_TRIAL_TOML = """
model = "vit_tiny_patch"
dataset = "tiny"
tiny_val_per_class = 5
batch_size = 32
warmup_epochs = 0.0
bench_batch = 8
bench_steps = 1
workers = 0
"""

# one CPU per trial, no GPU, neither system metrics nor a bench stage (not what these tests are about)
ONE_CPU_NO_EXTRAS = """
[resources]
cpus = 1
gpus = 0

[tracking]
system_metrics = false

[bench]
enabled = false
"""

# `quick` finishes while `slow-a` and `slow-b` still train (two trial slots): a sweep with a finished trial and
# running ones at one known moment. Two epochs: an interrupted slow trial has a mid-point to resume from.
INTERRUPTIBLE_SPEC = f"""
[sweep]
name = "{{name}}"

[trial]{TINY_TRIAL_TOML}epochs = 2
tiny_train_per_class = 200    # seconds per epoch: still running when the first trial has finished

[[variants]]
name = "quick"
epochs = 1
tiny_train_per_class = 20

[[variants]]
name = "slow-a"

[[variants]]
name = "slow-b"
seed = 1
{ONE_CPU_NO_EXTRAS}"""
INTERRUPTIBLE_TRIALS = ["quick", "slow-a", "slow-b"]


def trial_run_statuses(db: Path) -> dict[str, str]:
    """run name -> status of every trial's MLflow run, straight from the sqlite file while the sweep writes it."""
    rows = poll_db(db, "select r.name, r.status from runs r join tags t on t.run_uuid = r.run_uuid "
                       "where t.key = 'tokensweep.role' and t.value = 'trial'")  # fmt: skip
    return dict(rows)


def logged_steps(db: Path, run_name: str, key: str = "top1") -> list[int]:
    """The steps (epochs) of metric `key` the run named `run_name` has logged so far."""
    rows = poll_db(db, "select m.step from metrics m join runs r on r.run_uuid = m.run_uuid where r.name = ? and m.key = ?",
                   (run_name, key))  # fmt: skip
    return sorted(r[0] for r in rows)


def interrupted_sweep(args, cwd: Path, env: dict, interrupt, db: Path, wait_s: float = 60) -> tuple[int, str, float]:
    """`tokensweep ARGS` (a sweep of INTERRUPTIBLE_SPEC, recorded in `db`) in the background; once `quick` has
    finished and a slow trial has logged an epoch, `interrupt(proc)`. (exit code, output, seconds from the
    interrupt to the exit)."""
    proc, log = start_cli(args, cwd, env)
    try:
        wait_for(lambda: trial_run_statuses(db).get("quick") == "FINISHED" and (logged_steps(db, "slow-a") or logged_steps(db, "slow-b")),
                 400, "a finished trial and a running one", alive=lambda: proc.poll() is None)  # fmt: skip
        sent = time.monotonic()
        interrupt(proc)
        proc.wait(timeout=wait_s)
        took = time.monotonic() - sent
    finally:
        stop_process_group(proc)
    return proc.returncode, log.read_text(), took


# --- data sets with faults --------------------------------------------------------------------------


def image_folder(root: Path, classes: int = 3, train: int = 8, val: int = 4) -> Path:
    from trials.data import write_imagefolder

    return write_imagefolder(root, classes=classes, train_per_class=train, val_per_class=val, img_size=32)


def add_bad_files(root: Path, split: str = "train") -> list[Path]:
    """A truncated PNG and a text file named .jpg in the first class folder of `split`."""
    cls = sorted(p for p in (root / split).iterdir() if p.is_dir())[0]
    good = sorted(cls.glob("*.png"))[0].read_bytes()
    truncated, text = cls / "zz_truncated.png", cls / "zz_notes.jpg"
    truncated.write_bytes(good[: len(good) // 2])
    text.write_text("this is not an image")
    return [truncated, text]


# --- a real MLflow tracking server --------------------------------------------------------------------


class MlflowServer:
    """`mlflow server --backend-store-uri sqlite:///... --host 127.0.0.1 --port P`, stoppable and restartable
    (another backend store, artifact destination or environment on request).

    Runs in its own session so that stop() ends exactly its processes (the CLI and its uvicorn worker).
    MLflow's job runner (seven huey consumer processes, ~20 s of start-up on 2 cores) is off: no test
    here uses MLflow jobs.
    """

    def __init__(self, directory: Path, port: int | None = None, backend_store_uri: str | None = None,
                 artifacts_destination: str | None = None, env: dict | None = None):  # fmt: skip
        self.directory = Path(directory)
        self.db = self.directory / "server.db"
        self.backend_store_uri = backend_store_uri or f"sqlite:///{self.db}"  # or PostgreSQL (stack_fixtures)
        self.artifacts_destination = artifacts_destination or str(self.directory / "artifacts")  # or s3://...
        self.extra_env = env or {}  # e.g. the S3 endpoint and keys
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = None
        self.starts = 0

    def start(self, timeout: float = 180) -> "MlflowServer":
        self.starts += 1
        log = open(self.directory / f"mlflow-server-{self.starts}.log", "w")
        cmd = [
            str(BIN / "mlflow"), "server", "--backend-store-uri", self.backend_store_uri,
            "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
            "--artifacts-destination", self.artifacts_destination,
        ]  # fmt: skip
        env = {**os.environ, **self.extra_env, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        env = {k: v for k, v in env.items() if not k.startswith("MLFLOW_TRACKING_")}
        self.proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        wait_for(self.healthy, timeout, f"mlflow server on port {self.port}", interval=0.25, alive=lambda: self.proc.poll() is None)
        return self

    def healthy(self) -> bool:
        try:
            urllib.request.urlopen(f"{self.url}/health", timeout=2).close()
            return True
        except (urllib.error.URLError, OSError):
            return False

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # whatever of its session is left
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=20)
        wait_for(lambda: not self.healthy(), 20, "the mlflow server to stop")

    def log_text(self) -> str:
        return "\n".join(p.read_text()[-3000:] for p in sorted(self.directory.glob("mlflow-server-*.log")))


# --- processes and sockets ------------------------------------------------------------------------------


def tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root] + root.children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def listening_sockets(pids) -> list[tuple[str, int, int, str]]:
    """(ip, port, pid, process name) of every TCP socket in LISTEN state owned by one of `pids`."""
    pids = set(pids)
    found = []
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.pid in pids:
            try:
                name = psutil.Process(conn.pid).name()
            except psutil.NoSuchProcess:
                continue
            found.append((conn.laddr.ip, conn.laddr.port, conn.pid, name))
    return found


def trial_process(root_pid: int, trial_dirname_part: str):
    """The Ray worker running the Tune trial whose directory name contains `trial_dirname_part`.

    Tune runs a function trainable in its trial's working directory, so the worker's cwd names the trial.
    Only processes below `root_pid` (a Ray we started) are considered.
    """
    for proc in tree(root_pid):
        try:
            if proc.name().startswith("ray::") or "ImplicitFunc" in " ".join(proc.cmdline()):
                if trial_dirname_part in proc.cwd():
                    return proc
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return None


def start_cli(args, cwd: Path, env: dict, log_name: str = "sweep.log") -> tuple[subprocess.Popen, Path]:
    """`tokensweep ARGS` in the background, output to cwd/log_name, in its own process group."""
    log_path = Path(cwd) / log_name
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            CLI + [str(a) for a in args], cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    return proc, log_path


def stop_process_group(proc: subprocess.Popen, timeout: float = 30) -> None:
    """End a process we started with start_new_session=True, and everything in its group."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=timeout)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=timeout)


@contextlib.contextmanager
def paused(proc: subprocess.Popen):
    """The process (not its children) stopped with SIGSTOP for the block, continued after it whatever happens."""
    os.kill(proc.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(proc.pid, signal.SIGCONT)


def drop_read_override() -> list[str] | None:
    """Command prefix that runs a child without root's power to read any file (so chmod 000 bites).

    None when running as root without setpriv; [] when not root (chmod works as is).
    """
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return None
    return [setpriv, "--bounding-set", "-dac_override,-dac_read_search"]


PYTHON = sys.executable


# --- a small disk that fills up -----------------------------------------------------------------------------


@contextlib.contextmanager
def small_disk(path: Path, size: str):
    """A tmpfs of `size` mounted at `path` (root only; skipped where mounting is not allowed), always unmounted."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill up ({mounted.stderr.strip() or 'mount failed'}); needs root")
    try:
        yield path
    finally:
        if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)  # still in use by a process that is ending


def resize_disk(path: Path, size: str) -> None:
    subprocess.run(["mount", "-o", f"remount,size={size}", str(path)], check=True, capture_output=True)


def fill_disk(path: Path) -> Path:
    """Write a file in `path` until its filesystem is full; the file (delete it to free the space)."""
    filler = path / "filler.bin"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        for size in (64 << 10, 4 << 10, 1):  # down to the last byte: a few KiB left would hold a sqlite write or two
            chunk = b"\0" * size
            try:
                while os.write(fd, chunk):
                    pass
            except OSError as err:
                if err.errno != errno.ENOSPC:
                    raise
    finally:
        os.close(fd)
    return filler


# --- inputs that would run code ----------------------------------------------------------------------


class RunsCode:
    """Unpickled, it runs a shell command that creates `marker` (what a tampered state file could do)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {shlex.quote(str(self.marker))}",))
