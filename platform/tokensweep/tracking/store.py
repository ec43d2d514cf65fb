"""The MLflow store: its URIs, opening one (retries, outages), a new sqlite store created once.

Where a sweep's records go: the MLflow tracking URI and the Optuna storage (no MLflow import).

A sqlite MLflow store: checked before Ray starts, and created once however many processes open it at once.

MLflow builds a new sqlite store's tables (an alembic migration, 1-2.5 s) in whichever process touches
the file first (ours copy them from a store of MLflow's tables cached per MLflow version, `migrated_template`).
Two processes doing that at the same moment fail, and can leave the file half-built for good ("Online
migration expected to match one row", "table _alembic_tmp_metrics already exists"). So:
- our processes create a store one at a time (a lock file beside the database, `filelock`);
- the tables are built in a temporary file beside the database and linked into place only when
  complete, so no other process (`mlflow ui`, a script) ever sees our half-built store;
- a store that someone else is building is waited for (until MLflow's Default experiment exists: it is
  written last, once the migration is complete);
- what still fails is said in one line (SpecError), not MLflow's 40-line traceback.
No MLflow import at module level: `check_sqlite_store` runs before anything heavy is loaded.

Talking to an MLflow store that is shared or far away: opening it (a new sqlite store created once),
retries of a busy database, what "unreachable" looks like, and the driver's HTTP settings. No MLflow
import but RetryingClient's and open_store's.

PendingWrites: tracking writes kept in order while the store is unreachable, replayed when it answers.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import random
import re
import shutil
import sqlite3
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from tokensweep.errors import SpecError


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


HEADER = b"SQLite format 3\x00"
LOCK_TIMEOUT_S = 120.0  # another process of ours creating the store takes 1-3 s; a minute is a hung one
WAIT_FOR_OTHERS_S = 60.0  # someone else's half-built store: how long it may stay unchanged before we give up
STEADY_S = 5.0  # a half-built store unchanged this long is nobody's work in progress any more


def check_sqlite_store(path: str) -> None:
    """One line (SpecError) if `path` cannot be an MLflow store we write to: not a database, or not writable."""
    db = Path(path)
    where = f"--tracking-uri sqlite:///{path}"
    if db.exists():
        if not db.is_file():
            raise SpecError(f"{where}: {path} is not a file")
        try:
            with open(db, "r+b") as f:  # opened for writing, nothing written
                head = f.read(len(HEADER))
        except PermissionError:
            raise SpecError(f"{where}: {path} is not writable (permission denied); MLflow writes every run there") from None
        except OSError as err:
            raise SpecError(f"{where}: cannot open {path} for writing ({err.strerror or err})") from None
        if head and head != HEADER:
            raise SpecError(
                f"{where}: {path} is not an SQLite database (it starts with {head[:8]!r}); "
                "pass the path of an MLflow store, or a new file name"
            )
    _check_directory_writable(db.parent, where)


def _check_directory_writable(directory: Path, where: str) -> None:
    """sqlite writes a journal beside the database: its directory must take new files."""
    try:
        fd, probe = tempfile.mkstemp(prefix=".tokensweep-probe-", dir=directory)
    except PermissionError:
        raise SpecError(f"{where}: directory {directory} is not writable (permission denied); sqlite needs it for its journal") from None
    except OSError as err:
        raise SpecError(f"{where}: cannot create files in {directory} ({err.strerror or err})") from None
    os.close(fd)
    os.unlink(probe)


def read_only(path: str) -> contextlib.closing:
    """A read-only connection to the sqlite file at `path`, closed at the end of its `with`."""
    # a file: URI decodes %XX and ends the path at '?' or '#': the path goes in escaped
    return contextlib.closing(sqlite3.connect(f"file:{urllib.parse.quote(path)}?mode=ro", uri=True, timeout=5))


def is_complete(path: str) -> bool:
    """A store MLflow finished building: its Default experiment is written after the last migration step."""
    try:
        with read_only(path) as conn:
            leftovers = conn.execute("select count(*) from sqlite_master where name like '\\_alembic\\_tmp\\_%' escape '\\'").fetchone()[0]
            default = conn.execute("select count(*) from experiments where experiment_id = 0").fetchone()[0]
        return default > 0 and leftovers == 0
    except sqlite3.Error:
        return False


def damage(path: str) -> str | None:
    """What is wrong with the MLflow store at `path` for reading it (None: nothing found): a file that is not
    SQLite, a damaged database (e.g. a store deleted while MLflow had it open, then made again), no MLflow tables."""
    try:
        with read_only(path) as conn:
            check = conn.execute("pragma quick_check").fetchone()[0]
            tables = {row[0] for row in conn.execute("select name from sqlite_master where type = 'table'")}
    except sqlite3.Error as err:
        return f"it is not a readable SQLite database ({err})"
    if check != "ok":
        return f"the database is damaged ({' '.join(check.split())[:200]})"
    if not {"experiments", "runs", "alembic_version"} <= tables:
        return "it holds no MLflow tables"
    return None


def ensure_sqlite_store(path: str) -> None:
    """Make sure the MLflow store at `path` exists and is complete, creating it if it does not exist."""
    if is_complete(path):
        return
    from filelock import FileLock, Timeout

    lock = FileLock(f"{path}.lock", timeout=LOCK_TIMEOUT_S)
    try:
        with lock:
            if not os.path.exists(path):
                _build_and_link(path)
            if not is_complete(path):
                _wait_for_other_builder(path)
    except Timeout:
        raise SpecError(
            f"MLflow store sqlite:///{path}: another process has held {path}.lock for {LOCK_TIMEOUT_S:.0f} s while "
            "creating it; if no such process runs, delete the lock file"
        ) from None


def _build_and_link(path: str) -> None:
    """MLflow's tables in a file beside `path`, then linked to `path` unless someone created it meanwhile."""
    directory = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.creating-", dir=directory)
    os.close(fd)
    artifacts = Path(directory, "mlartifacts").as_uri()
    try:
        template = migrated_template()
        if template is not None:
            shutil.copyfile(template, tmp)
        try:
            _open_and_close(tmp, artifacts)
        except Exception:  # noqa: BLE001 - a copy this MLflow will not open (its schema moved on): MLflow migrates
            if template is None:
                raise
            with contextlib.suppress(OSError):
                os.unlink(template)  # the next new store caches this MLflow's tables again
            open(tmp, "wb").close()
            _open_and_close(tmp, artifacts)
        try:
            os.link(tmp, path)  # atomic, and never replaces a file another process created meanwhile
        except FileExistsError:
            pass  # theirs wins; it is waited for like any other
    finally:
        for leftover in (tmp, f"{tmp}-journal"):
            try:
                os.unlink(leftover)
            except FileNotFoundError:
                pass


def _open_and_close(path: str, artifact_root: str) -> None:
    """MLflow's store at `path` opened once: its tables built or checked, its Default experiment there."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    SqlAlchemyStore(f"sqlite:///{path}", artifact_root).engine.dispose()  # no connection left on the file


def migrated_template() -> str | None:
    """A store holding only MLflow's tables at this MLflow's schema, cached per MLflow version (None where the
    cache cannot be written). MLflow builds a new store's tables by replaying every migration (~0.8 CPU-s);
    a copy of this one is a file copy, and MLflow adds the Default experiment (with the new store's own
    artifact root) when it opens the copy."""
    import mlflow

    try:
        folder = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache", "tokensweep")
        template = folder / f"mlflow-{mlflow.__version__}-tables.db"
        if template.is_file():
            return str(template)
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{template.name}.", dir=folder)
        os.close(fd)
        try:
            _open_and_close(tmp, folder.as_uri())
            with contextlib.closing(sqlite3.connect(tmp)) as conn, conn:
                conn.execute("delete from experiments where experiment_id = 0")
            os.replace(tmp, template)  # whole, or not there: another process's copy is the same
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
    except Exception as err:  # noqa: BLE001 - no cache (no home folder, read-only, full): MLflow builds the tables
        log.debug("no cached MLflow tables (%s): MLflow builds them", err)
        return None
    return str(template)


def _wait_for_other_builder(path: str) -> None:
    """A store someone else (an `mlflow ui`, a script) is building: wait while it changes; then open it
    anyway - MLflow finishes a store that was left half-built by a process that died, or says why not."""
    deadline = time.monotonic() + WAIT_FOR_OTHERS_S
    last, steady_since = None, time.monotonic()
    while time.monotonic() < deadline and not is_complete(path):
        try:
            st = os.stat(path)
            now_state = (st.st_size, st.st_mtime_ns)
        except FileNotFoundError:
            now_state = None
        if now_state != last:
            last, steady_since = now_state, time.monotonic()
        elif time.monotonic() - steady_since > STEADY_S:
            return
        time.sleep(0.1)


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


PAGE = 10_000  # runs per search request: a few requests for the largest sweeps, each a moderate response


def all_runs(search_runs, experiment_ids: list[str], filter_string: str, order_by: list[str] | None = None) -> list:
    """Every run that matches, a page at a time, all pages read before the caller changes any (MLflow's pages
    are offsets: closing a RUNNING run would shift the next page of a RUNNING search). `search_runs`:
    MlflowClient.search_runs, or a wrapper of it that words its errors."""
    runs, token = [], None
    while True:
        page = search_runs(experiment_ids, filter_string=filter_string, max_results=PAGE, order_by=order_by, page_token=token)
        runs += page
        token = page.token
        if not token:
            return runs


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
    processes open it at the same moment (tokensweep.tracking.store). What still fails after a few
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


# MLflow's sqlite store logs each failed request with its traceback before raising it
MLFLOW_STORE_LOGGER = "mlflow.store.db.utils"
RETRY_EVERY_S = 3.0  # how often waiting writes are tried again


class _ReportedByPendingWrites(logging.Filter):
    """Drops MLflow's record of a failed request: the error is raised too, and PendingWrites says what became
    of the write in its own words - a note once per outage, one line per other failure, one line for a store
    deleted or replaced - not a traceback per write."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < logging.ERROR


def quiet_store_errors() -> None:
    logger = logging.getLogger(MLFLOW_STORE_LOGGER)
    if not any(isinstance(f, _ReportedByPendingWrites) for f in logger.filters):
        logger.addFilter(_ReportedByPendingWrites())


class PendingWrites:
    """Tracking writes, in order, that wait while the store is unreachable; replayed when it answers.

    `submit(what, fn, *args)` calls fn at once when nothing is waiting. If the store cannot be reached
    (`is_unavailable`), the write waits in a FIFO, and so does every later one - never reordered, so a
    run is not marked FINISHED before its last metrics arrive. Later submits (and `poke`, called on
    every Tune step) replay the queue, at most once per `retry_every_s`, so a dead server costs one
    quick failed request every few seconds rather than blocking. `wait` gives the queue time to empty
    (once per outage: a store that stayed unreachable for a whole wait gets one more try, not another
    wait); `drain` waits, then counts what it cannot deliver in `lost` and reports it (`not_recorded`),
    never dropping it silently. Any other error (a bug, a refused value) is counted in `failed`, logged
    in one line, and skipped - unless `check_store` (called then) says why the store is not the sweep's any
    more (deleted, replaced): then `lose_store` - that write and every later one is kept back and counted by
    `drain`, none is sent to a store that is not the sweep's.
    """

    def __init__(self, label: str = "MLflow", retry_every_s: float = RETRY_EVERY_S, clock=time.monotonic, sleep=time.sleep,
                 check_store=None):  # fmt: skip
        self.label = label
        self.check_store = check_store  # () -> why the store is not the sweep's, or None
        self.gone: str | None = None  # lose_store's reason
        self.retry_every_s = retry_every_s
        self.clock, self.sleep = clock, sleep
        self.queue: collections.deque = collections.deque()
        self.failed = 0  # writes that raised something other than "unreachable"
        self.lost = 0  # writes still waiting when drain gave up
        self.delivered_late = 0  # writes that waited, then arrived
        self.outages = 0
        self._next_try = 0.0
        self._waited_out = False  # a wait of this outage ended with writes still waiting
        quiet_store_errors()

    @property
    def waiting(self) -> int:
        return len(self.queue)

    def lose_store(self, why: str) -> None:
        """The store is not the sweep's any more: say so once; from now on writes are kept back and counted."""
        if self.gone is None:
            self.gone = why
            print(
                f"tokensweep run: error: {self.label} {why}; its writes are no longer sent, and Tune keeps every result: "
                "`--resume` against the restored store (or a new one) records every trial",
                file=sys.stderr,
                flush=True,
            )

    def submit(self, what: str, fn, *args) -> None:
        self.queue.append((what, fn, args))
        if self.gone:
            return
        if len(self.queue) == 1:
            self._run_queue()
        else:
            self.poke()

    def poke(self) -> None:
        """Replay waiting writes if the last try was long enough ago."""
        if self.queue and self.clock() >= self._next_try:
            self._run_queue()

    def _run_queue(self) -> bool:
        """Deliver waiting writes in order; stop at the first that finds the store unreachable."""
        was_waiting = self._next_try > 0  # an outage began: what is delivered now arrives late
        while self.queue and not self.gone:
            what, fn, args = self.queue[0]
            try:
                fn(*args)
            except Exception as err:
                if is_unavailable(err):
                    if self._next_try == 0:
                        self.outages += 1
                        print(
                            f"tokensweep run: note: {self.label} is unreachable ({why_unreachable(err)}); keeping its "
                            f"writes in order and retrying every {self.retry_every_s:g}s",
                            file=sys.stderr,
                            flush=True,
                        )
                    self._next_try = self.clock() + self.retry_every_s
                    return False
                why = self.check_store() if self.check_store else None
                if why:
                    self.lose_store(why)
                    return False
                self.failed += 1
                log.error("MLflow logging failed (%s); the sweep goes on: %s", what, mlflow_error(err))
                log.debug("MLflow logging failure", exc_info=True)
            else:
                if was_waiting:
                    self.delivered_late += 1
            self.queue.popleft()
        if self.gone:
            return False
        if self._next_try > 0:
            print(f"tokensweep run: note: {self.label} answers again; every waiting write delivered", file=sys.stderr, flush=True)
            self._next_try = 0.0
        self._waited_out = False
        return True

    def wait(self, timeout_s: float) -> bool:
        """Replay until the queue is empty or `timeout_s` passed (one try if an earlier wait of this outage
        ran out); True if nothing is left waiting."""
        if not self.queue:
            return True
        if self.gone:  # nothing to wait for
            return False
        if self._waited_out:
            return self._run_queue()
        deadline = self.clock() + timeout_s
        print(
            f"tokensweep run: note: waiting up to {timeout_s:g}s for {self.label} to deliver "
            f"{len(self.queue)} write(s)",
            file=sys.stderr,
            flush=True,
        )
        while self.queue:
            self.poke()
            if not self.queue or self.clock() >= deadline:
                break
            self.sleep(min(self.retry_every_s, max(0.0, deadline - self.clock()), 1.0))
        self._waited_out = bool(self.queue)
        return not self.queue

    def drain(self, timeout_s: float) -> int:
        """`wait`, then count in `lost` and report what is left (its number, returned), and forget it."""
        if self.wait(timeout_s):
            return 0
        left = len(self.queue)
        self.lost += left
        whats = collections.Counter(what for what, _, _ in self.queue)
        print(f"tokensweep run: error: {not_recorded(self.label, whats)}", file=sys.stderr, flush=True)
        self.queue.clear()
        return left


def not_recorded(label: str, whats: collections.Counter) -> str:
    """The one wording of writes that never reached the store, whichever phase of a sweep gave up on them."""
    summary = ", ".join(f"{n} x {what}" for what, n in whats.items())
    return f"{label} stayed unreachable; {whats.total()} write(s) were not recorded ({summary}): those runs are incomplete"
