"""Real services of a cluster stack for tests, on 127.0.0.1 only: PostgreSQL and an S3 endpoint.

- `Postgres`: Debian's `postgresql` package (CI installs it: .ci/run), one throw-away cluster with
  its data and socket in a temporary folder and a free TCP port. PostgreSQL refuses to run as root,
  so under root it runs as the `postgres` user (setpriv, no shell in between: the process we start
  is the postmaster, and stopping it by its id stops exactly this server).
- `S3Server`: moto's S3 server (`python -m moto.server`), reached the way a user reaches MinIO or
  any S3-compatible store: AWS_ENDPOINT_URL plus a key pair and a region in the environment, which
  both boto3 (MLflow's artifacts) and pyarrow (Ray Tune's storage) read.

Every process is started in its own session and stopped by its id; `stop()` is safe to call twice
and after a failed start, so fixtures call it in their teardown whatever happened.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from helpers import free_port

POSTGRES_TOOLS = ("initdb", "postgres", "pg_isready", "createdb")


def wait_until(predicate, timeout: float, what: str, alive=None, interval: float = 0.25):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if alive is not None and not alive():
            raise RuntimeError(f"{what}: the process ended before it was ready")
        time.sleep(interval)
    raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")


def _end(proc: subprocess.Popen | None, first=signal.SIGTERM, timeout: float = 20) -> None:
    """Stop a process we started with start_new_session=True: `first`, then SIGKILL to its group."""
    if proc is None:
        return
    if proc.poll() is None:
        try:
            os.kill(proc.pid, first)
            proc.wait(timeout=timeout)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # whatever of its session is left
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait(timeout=timeout)


# --- PostgreSQL ---------------------------------------------------------------------------------------


def postgres_bin_dir() -> Path | None:
    """The folder holding initdb/postgres: on PATH, else Debian's /usr/lib/postgresql/<version>/bin
    (newest first); None when PostgreSQL is not installed."""
    on_path = shutil.which("initdb")
    candidates = [Path(on_path).parent] if on_path else []
    by_version = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0)
    candidates += [Path(p) for p in reversed(by_version)]
    for folder in candidates:
        if all((folder / tool).is_file() for tool in POSTGRES_TOOLS):
            return folder
    return None


def postgres_missing_reason() -> str | None:
    """Why a PostgreSQL cannot be started here, or None when it can."""
    if postgres_bin_dir() is None:
        return "PostgreSQL is not installed (Debian: apt-get install postgresql; .ci/run installs it)"
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            return "running as root without setpriv (util-linux) to start PostgreSQL as another user"
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no 'postgres' user to run PostgreSQL as"
    return None


class Postgres:
    """One PostgreSQL server on 127.0.0.1:<free port> with a database and a password-protected role."""

    def __init__(self, user: str = "mlflow", database: str = "mlflow"):
        self.bin = postgres_bin_dir()
        if self.bin is None:
            raise RuntimeError(postgres_missing_reason())
        self.user, self.database = user, database
        self.password = secrets.token_hex(12)
        self.port = free_port()
        # not under pytest's tmp (mode 0700, root's): the postgres user must reach it; short, for the
        # unix socket path (107 bytes at most)
        self.root = Path(tempfile.mkdtemp(prefix="tspg"))
        self.data = self.root / "data"
        self.sockets = self.root / "run"
        self.log_path = self.root / "postgres.log"
        self.proc = None
        self.starts = 0

    @property
    def url(self) -> str:
        """SQLAlchemy URL (MLflow's --backend-store-uri)."""
        return f"postgresql+psycopg2://{self.user}:{self.password}@127.0.0.1:{self.port}/{self.database}"

    def _as_owner(self) -> list[str]:
        if os.geteuid() != 0:
            return []
        return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--"]

    def _give_to_owner(self, path: Path) -> None:
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(path, owner.pw_uid, owner.pw_gid)

    def _env(self) -> dict:
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "PGPASSWORD": self.password}

    def start(self, timeout: float = 120) -> "Postgres":
        if self.starts == 0:
            self._init()
        self.starts += 1
        cmd = [
            *self._as_owner(), str(self.bin / "postgres"), "-D", str(self.data), "-p", str(self.port),
            "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.sockets}",
            # a throw-away test database: no durability work (a crash of the machine loses it anyway)
            "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
        ]  # fmt: skip
        with open(self.log_path, "a") as log:
            self.proc = subprocess.Popen(cmd, env=self._env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_until(self._ready, timeout, f"PostgreSQL on 127.0.0.1:{self.port}", alive=lambda: self.proc.poll() is None)
        if self.starts == 1:
            self._tool("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, self.database)
        return self

    def _init(self) -> None:
        self._give_to_owner(self.root)
        pwfile = self.root / "pw"
        pwfile.write_text(self.password + "\n")
        self._give_to_owner(pwfile)
        try:
            self._tool(
                "initdb", "-D", str(self.data), "-U", self.user, f"--pwfile={pwfile}", "-E", "UTF8", "--locale=C",
                "--auth-local=peer", "--auth-host=scram-sha-256", "--no-sync", "--no-instructions",
            )  # fmt: skip
        finally:
            pwfile.unlink()
        self.sockets.mkdir()
        self._give_to_owner(self.sockets)

    def _tool(self, name: str, *args: str) -> None:
        proc = subprocess.run(
            [*self._as_owner(), str(self.bin / name), *args], env=self._env(), capture_output=True, text=True, timeout=120
        )
        if proc.returncode != 0:
            raise RuntimeError(f"{name} failed ({proc.returncode}): {proc.stdout[-2000:]}{proc.stderr[-2000:]}")

    def _ready(self) -> bool:
        probe = [str(self.bin / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, "-d", "postgres"]
        return subprocess.run(probe, env=self._env(), timeout=30).returncode == 0

    def stop(self) -> None:
        """Fast shutdown (SIGINT: open sessions are ended, not waited for), then SIGKILL if need be."""
        _end(self.proc, first=signal.SIGINT, timeout=30)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:] if self.log_path.exists() else ""


# --- S3 (moto's server) --------------------------------------------------------------------------------------


class S3Server:
    """moto's S3 server on 127.0.0.1:<free port>; `env` is what a user sets for a local S3 / MinIO."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.secret = secrets.token_hex(16)
        self.proc = None

    @property
    def env(self) -> dict:
        return {
            "AWS_ENDPOINT_URL": self.url,  # boto3 >= 1.28 and pyarrow's S3 (Ray Tune storage) both read it
            "AWS_ACCESS_KEY_ID": "tokensweep-test",  # moto accepts any key pair
            "AWS_SECRET_ACCESS_KEY": self.secret,  # made per run: no secret-looking literal in the repository
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def start(self, timeout: float = 60) -> "S3Server":
        cmd = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)]
        with open(self.directory / "moto.log", "w") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_until(self._ready, timeout, f"moto S3 server on {self.url}", alive=lambda: self.proc.poll() is None)
        return self

    def _ready(self) -> bool:
        try:
            urllib.request.urlopen(f"{self.url}/moto-api/data.json", timeout=2).close()
            return True
        except (urllib.error.URLError, OSError):
            return False

    def client(self):
        import boto3

        env = self.env
        return boto3.client(
            "s3", endpoint_url=self.url, region_name=env["AWS_DEFAULT_REGION"],
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        )  # fmt: skip

    def create_bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        """Every object key under prefix (paginated)."""
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return [obj["Key"] for page in pages for obj in page.get("Contents", [])]

    def read(self, bucket: str, key: str) -> bytes:
        return self.client().get_object(Bucket=bucket, Key=key)["Body"].read()

    def stop(self) -> None:
        _end(self.proc)
