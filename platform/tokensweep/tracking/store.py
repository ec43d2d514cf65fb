"""Talking to an MLflow store that is shared or far away: opening it (a new sqlite store created once),
retries of a busy database, what "unreachable" looks like, and the driver's HTTP settings. No MLflow
import but RetryingClient's and open_store's."""

from __future__ import annotations

import logging
import os
import random
import re
import sqlite3
import time

from tokensweep.errors import SpecError
from tokensweep.tracking.sqlite_store import ensure_sqlite_store, read_only
from tokensweep.tracking.uris import redact, sqlite_path

log = logging.getLogger(__name__)

_TRANSIENT = ("database is locked", "database table is locked", "deadlock detected", "could not serialize access")


def is_transient(err: BaseException) -> bool:
    text = f"{type(err).__name__}: {err}".lower()
    return any(marker in text for marker in _TRANSIENT)


def retry(fn, *args, attempts: int = 12, base_delay: float = 0.05, **kwargs):
    """Call fn, retrying lock/serialisation errors of a shared database with jittered backoff (~40 s)."""
    for attempt in range(attempts):
        try:
            return fn(*args, **kwargs)
        except Exception as err:  # MlflowException wraps sqlalchemy's OperationalError
            if attempt == attempts - 1 or not is_transient(err):
                raise
            delay = min(5.0, base_delay * 2**attempt) * (0.5 + random.random())
            log.debug("transient MLflow store error (%s); retrying in %.2fs", err, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")


# A tracking server that does not answer (stopped, restarting, behind a proxy that says 502-504).
_UNAVAILABLE = (
    "connection refused",
    "failed to establish a new connection",
    "max retries exceeded",
    "connection aborted",
    "connection reset",
    "remotedisconnected",
    "timed out",
    "temporarily unavailable",
    "name or service not known",
    # a full disk under a sqlite store: the write is refused whole (sqlite rolls it back), so it is kept
    # and retried like an outage, and reported if space never comes back
    "database or disk is full",
    "no space left on device",
    "too many 502 error responses",
    "too many 503 error responses",
    "too many 504 error responses",
)


def is_unavailable(err: BaseException) -> bool:
    """Did a write fail because the store could not be reached right now (worth keeping and retrying)?"""
    text = f"{type(err).__name__}: {err}".lower()
    return is_transient(err) or any(marker in text for marker in _UNAVAILABLE)


# The driver's MLflow HTTP client: fail a request in seconds when the server is down (MLflow's default
# is 7 retries with exponential backoff, ~4 minutes, and a 120 s timeout per try, during which Tune's
# event loop - which runs the tracking callback - would stand still). PendingWrites keeps what failed
# and replays it later instead. A server that accepts connections but never answers costs up to
# 2 x 15 s per replay attempt.
DRIVER_HTTP_SETTINGS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.5",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "15",
}


def use_driver_http_settings(environ=None) -> None:
    """Set DRIVER_HTTP_SETTINGS in this process (values the user set win). Call after ray.init, so that
    the trials of a local Ray keep MLflow's patient defaults for their system metrics."""
    environ = os.environ if environ is None else environ
    for key, value in DRIVER_HTTP_SETTINGS.items():
        environ.setdefault(key, value)


def one_line(err: BaseException) -> str:
    text = f"{type(err).__name__}: {err}"
    return redact(" ".join(text.split()))[:500]


def why_unreachable(err: BaseException) -> str:
    """'Connection refused' rather than MLflow's three lines of urllib3 retry history."""
    text = str(err)
    m = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", text) or re.search(
        r"(?i)(read timed out|connect timeout|too many \d+ error responses|connection aborted|remotedisconnected|database is locked"
        r"|database or disk is full)",
        text,
    )
    return m[1].strip() if m else one_line(err)[:200]


def mlflow_error(err: BaseException) -> str:
    """A failed MLflow request in one line: its type and why, without sqlalchemy's statement, parameters and
    background link, or urllib3's retry history."""
    driver_error = re.search(r"\((?:sqlite3|psycopg2?)\.[\w.]+\) ([^\[(]+)", " ".join(str(err).split()))
    if is_unavailable(err):
        reason = why_unreachable(err)
    elif driver_error:
        reason = driver_error[1].strip()
    else:
        return one_line(err)
    return redact(f"{type(err).__name__}: {reason}")


def store_problem(client, tracking_uri: str, parent_run_id: str) -> str | None:
    """Why the store is no longer the one holding the sweep's parent run (deleted, replaced), or None. A sqlite
    file is read on a connection of its own: the client's open ones go on writing to a deleted file unawares."""
    db = sqlite_path(tracking_uri)
    if db is None:
        try:
            client.get_run(parent_run_id)
        except Exception as err:
            if "RESOURCE_DOES_NOT_EXIST" in str(getattr(err, "error_code", "")) + str(err):
                return f"was replaced mid-sweep (the sweep's parent run {parent_run_id} is not in it)"
        return None
    if not os.path.exists(db):
        return "was deleted mid-sweep"
    try:
        with read_only(db) as conn:
            found = conn.execute("select count(*) from runs where run_uuid = ?", (parent_run_id,)).fetchone()[0]
    except sqlite3.Error as err:
        return None if is_transient(err) else f"was deleted or replaced mid-sweep ({err})"
    return None if found else f"was replaced mid-sweep (the sweep's parent run {parent_run_id} is not in it)"


def quote(value: str) -> str:
    """A value inside an MLflow search filter string."""
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


class RetryingClient:
    """An MlflowClient whose calls retry transient database errors."""

    def __init__(self, tracking_uri: str):
        from mlflow.tracking import MlflowClient

        self.tracking_uri = tracking_uri
        self._client = MlflowClient(tracking_uri)

    def __getattr__(self, name):
        attr = getattr(self._client, name)
        if not callable(attr):
            return attr

        def call(*args, **kwargs):
            return retry(attr, *args, **kwargs)

        return call


OPEN_ATTEMPTS = 3


def open_store(tracking_uri: str) -> RetryingClient:
    """A client of the store, which exists and answers: a new sqlite store is created once, however many
    processes open it at the same moment (tokensweep.tracking.sqlite_store). What still fails after a few
    tries is one line (SpecError), not MLflow's traceback. Cheap for a store that exists."""
    path = sqlite_path(tracking_uri)
    for attempt in range(OPEN_ATTEMPTS):
        try:
            if path is not None:
                ensure_sqlite_store(path)
            client = RetryingClient(tracking_uri)
            client.search_experiments(max_results=1)  # the store's first request: MLflow opens (and checks) it here
            return client
        except SpecError:
            raise
        except Exception as err:
            if attempt == OPEN_ATTEMPTS - 1:
                raise SpecError(f"cannot open the MLflow store at {redact(tracking_uri)}: {why_store_failed(err)}") from None
            log.debug("opening the MLflow store failed (%s); trying again", one_line(err))
            time.sleep(1.0 + attempt)
    raise AssertionError("unreachable")


def why_store_failed(err: BaseException) -> str:
    """The one line that says what is wrong with a store, from MLflow's or sqlalchemy's many."""
    text = " ".join(str(err).split())
    m = re.search(r"\(sqlite3\.\w+\) ([^\[(]+)", text) or re.search(r"(Detected out-of-date database schema[^.]*)", text)
    reason = m[1].strip() if m else one_line(err)[:300]
    if "_alembic_tmp" in text or "already exists" in text or "Online migration" in text:
        reason += " (the store was left half-created by processes that built it at the same time; if it holds no runs, delete it)"
    return reason
