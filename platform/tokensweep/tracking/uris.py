"""Where a sweep's records go: the MLflow tracking URI and the Optuna storage (no MLflow import)."""

from __future__ import annotations

import os
import re
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

# scheme://user:password@host -> the password part (any URL: tracking URI, Optuna storage, in messages)
_USERINFO = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]*):(?P<secret>[^/\s@]+)@")
SQLITE = "sqlite:///"
# what a sqlite URI's path must escape to be read back as written: SQLAlchemy percent-decodes it and
# ends it at '?'; '#' it keeps, but other URL parsers would cut it off there
_ESCAPES = str.maketrans({"%": "%25", "?": "%3F", "#": "%23"})


def resolve_tracking_uri(flag: str | None = None, environ=None, cwd: str | None = None) -> str:
    """--tracking-uri > $MLFLOW_TRACKING_URI > sqlite:///<abs cwd>/mlflow.db; sqlite paths made absolute.

    Absolute because trials and Ray jobs run in other working directories: a relative sqlite URI
    there silently opens a different, throw-away database.
    """
    environ = os.environ if environ is None else environ
    uri = flag or environ.get("MLFLOW_TRACKING_URI") or ""
    cwd = cwd or os.getcwd()
    if not uri:
        return sqlite_uri(Path(cwd, "mlflow.db").resolve())
    path = _sqlite_file(uri)
    if path and path != ":memory:" and not path.startswith("/"):
        _, query, rest = uri.partition("?")
        return sqlite_uri(Path(cwd, path).resolve()) + query + rest
    return uri


def sqlite_uri(path: str | os.PathLike) -> str:
    """sqlite:///<path>, escaped so that MLflow (SQLAlchemy) opens exactly `path`."""
    return SQLITE + str(path).translate(_ESCAPES)


def _sqlite_file(uri: str) -> str | None:
    """The file a sqlite:/// URI names, decoded once as SQLAlchemy decodes it (before any '?'), else None."""
    if not uri.startswith(SQLITE):
        return None
    return urllib.parse.unquote(uri[len(SQLITE) :].partition("?")[0])


def sqlite_path(uri: str) -> str | None:
    """The absolute file path of a sqlite:/// URI (the file MLflow opens), else None."""
    path = _sqlite_file(uri)
    return path if path and path.startswith("/") else None


def default_optuna_storage(tracking_uri: str, cwd: str | None = None) -> str:
    """The Optuna study's database: optuna.db beside a sqlite tracking store, else in the working dir."""
    db = sqlite_path(tracking_uri)
    directory = Path(db).parent if db else Path(cwd or os.getcwd()).resolve()
    return sqlite_uri(directory / "optuna.db")


# --- secrets in URIs ---------------------------------------------------------------------------------


def redact(text: str) -> str:
    """Hide the password of every `scheme://user:password@host` in `text` (URIs, messages, command lines)."""
    return _USERINFO.sub(lambda m: f"{m['head']}:***@", str(text))


def split_credentials(uri: str) -> tuple[str, str | None, str | None]:
    """http(s)://user:password@host... -> (http(s)://host..., user, password); other URIs unchanged.

    MLflow reads a server's basic-auth credentials from MLFLOW_TRACKING_USERNAME/PASSWORD too; the
    sweep passes them to its trials that way rather than inside the URI (which Tune would save in
    every trial's config and result files).
    """
    parsed = urllib.parse.urlsplit(uri)
    if parsed.scheme not in ("http", "https") or parsed.password is None:
        return uri, None, None
    host = parsed.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parsed.port}" if parsed.port else "")
    bare = urllib.parse.urlunsplit((parsed.scheme, netloc, parsed.path, parsed.query, parsed.fragment))
    return bare, urllib.parse.unquote(parsed.username or ""), urllib.parse.unquote(parsed.password)



def credentials_to_environment(tracking_uri: str, environ=None) -> str:
    """http(s)://user:password@host -> http(s)://host, with the credentials in MLflow's own variables.

    MLflow prints "View run ... at: <tracking URI>" and Tune saves every trial's config, so a password
    inside the URI would end up on the terminal and in Tune's storage. MLFLOW_TRACKING_USERNAME/PASSWORD
    carry it instead: to this driver, and to the trials of a new local Ray (whose workers inherit this
    environment; call before ray.init). On a cluster, set them in the nodes' environment for the trials'
    system metrics. When both variables are already set, MLflow uses them rather than the URI's, so they
    stay; with one or none set MLflow would use the URI's pair, so both are set from it.
    """
    environ = os.environ if environ is None else environ
    bare, user, password = split_credentials(tracking_uri)
    if password is None:
        return tracking_uri
    if not (environ.get("MLFLOW_TRACKING_USERNAME") and environ.get("MLFLOW_TRACKING_PASSWORD")):
        environ["MLFLOW_TRACKING_USERNAME"] = user or ""
        environ["MLFLOW_TRACKING_PASSWORD"] = password
    return bare


# --- reachability ----------------------------------------------------------------------------------------


def server_unreachable(uri: str, timeout: float = 5.0) -> str | None:
    """Why an http(s) tracking server does not answer (None: it answers, or not a server URI).

    Any HTTP answer counts (401 behind basic auth, 404 from an old server without /health): only a
    refused connection, a timeout or an unresolvable host make it unreachable. Without this check
    MLflow retries each request for ~4 minutes (7 retries, exponential backoff) before failing.
    """
    bare, _, _ = split_credentials(uri)
    if urllib.parse.urlsplit(bare).scheme not in ("http", "https"):
        return None
    try:
        urllib.request.urlopen(f"{bare.rstrip('/')}/health", timeout=timeout).close()
    except urllib.error.HTTPError:
        return None
    except (urllib.error.URLError, OSError, ValueError) as err:
        reason = getattr(err, "reason", err)
        return str(getattr(reason, "strerror", None) or reason)
    return None


TRACKING_SCHEMES = ("sqlite:///", "http://", "https://", "postgresql", "mysql", "mssql", "databricks")


def tracking_uri_problem(uri: str, existing: bool = False, ask_server: bool = True, timeout: float = 10.0) -> str | None:
    """Why a tracking URI cannot work, in one line (None: it can), before MLflow would retry a dead
    server for minutes or silently create an empty database: no store MLflow 3 has, a sqlite file in
    a missing folder (or, `existing`, a missing file: nothing to read), a server that does not answer."""
    if not uri.startswith(TRACKING_SCHEMES):
        return (f"--tracking-uri {redact(uri)!r}: expected sqlite:///path/mlflow.db, http(s)://server or a database "
                "URL (MLflow 3 has no ./mlruns file store)")  # fmt: skip
    db = _sqlite_file(uri)
    if db is not None and "?" in uri:
        return (f"--tracking-uri {uri!r}: '?' starts query arguments in a URI, so MLflow would open {db!r}; "
                "write a '?' of the file name as %3F, and leave query arguments out")  # fmt: skip
    if db is not None and db != ":memory:":
        if existing and not Path(db).is_file():
            return f"no MLflow store at {uri} ({db} does not exist); run a sweep first, or pass --tracking-uri / set MLFLOW_TRACKING_URI"
        if not Path(db).parent.is_dir():
            return f"--tracking-uri {uri!r}: directory {str(Path(db).parent)!r} does not exist"
    reason = server_unreachable(uri, timeout) if ask_server else None
    if reason is not None:
        return (f"cannot reach the MLflow tracking server at {redact(uri)}: {reason}; start it, or pass another "
                "--tracking-uri / MLFLOW_TRACKING_URI")  # fmt: skip
    return None
