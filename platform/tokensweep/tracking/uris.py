"""Where a sweep's records go: the MLflow tracking URI and the Optuna storage (no MLflow import)."""

from __future__ import annotations

import os
from pathlib import Path


def resolve_tracking_uri(flag: str | None = None, environ=None, cwd: str | None = None) -> str:
    """--tracking-uri > $MLFLOW_TRACKING_URI > sqlite:///<abs cwd>/mlflow.db; sqlite paths made absolute.

    Absolute because trials and Ray jobs run in other working directories: a relative sqlite URI
    there silently opens a different, throw-away database.
    """
    environ = os.environ if environ is None else environ
    uri = flag or environ.get("MLFLOW_TRACKING_URI") or ""
    cwd = cwd or os.getcwd()
    if not uri:
        return f"sqlite:///{Path(cwd, 'mlflow.db').resolve()}"
    if uri.startswith("sqlite:///"):
        path = uri[len("sqlite:///") :]
        if path and path != ":memory:" and not path.startswith("/"):
            return f"sqlite:///{Path(cwd, path).resolve()}"
    return uri


def sqlite_path(uri: str) -> str | None:
    """The absolute file path of a sqlite:/// URI, else None."""
    if uri.startswith("sqlite:///"):
        path = uri[len("sqlite:///") :]
        return path if path.startswith("/") else None
    return None


def default_optuna_storage(tracking_uri: str, cwd: str | None = None) -> str:
    """The Optuna study's database: optuna.db beside a sqlite tracking store, else in the working dir."""
    db = sqlite_path(tracking_uri)
    directory = Path(db).parent if db else Path(cwd or os.getcwd()).resolve()
    return f"sqlite:///{directory / 'optuna.db'}"
