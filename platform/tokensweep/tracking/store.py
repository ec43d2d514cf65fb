"""Talking to an MLflow store that is shared or far away: retries of a busy database, what "unreachable"
looks like, and the driver's HTTP settings. No MLflow import but RetryingClient's."""

from __future__ import annotations

import logging
import os
import random
import re
import time

from tokensweep.tracking.uris import redact

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
        r"(?i)(read timed out|connect timeout|too many \d+ error responses|connection aborted|remotedisconnected|database is locked)", text
    )
    return m[1].strip() if m else one_line(err)[:200]


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
