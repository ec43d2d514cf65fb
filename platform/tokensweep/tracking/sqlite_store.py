"""A sqlite MLflow store: checked before Ray starts, and created once however many processes open it at once.

MLflow builds a new sqlite store's tables (an alembic migration, 1-2.5 s) in whichever process touches
the file first. Two processes doing that at the same moment fail, and can leave the file half-built for
good ("Online migration expected to match one row", "table _alembic_tmp_metrics already exists"). So:
- our processes create a store one at a time (a lock file beside the database, `filelock`);
- the tables are built in a temporary file beside the database and linked into place only when
  complete, so no other process (`mlflow ui`, a script) ever sees our half-built store;
- a store that someone else is building is waited for (until MLflow's Default experiment exists: it is
  written last, once the migration is complete);
- what still fails is said in one line (SpecError), not MLflow's 40-line traceback.
No MLflow import at module level: `check_sqlite_store` runs before anything heavy is loaded.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
import time
import urllib.parse
from pathlib import Path

from tokensweep.errors import SpecError

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
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    directory = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.creating-", dir=directory)
    os.close(fd)
    try:
        store = SqlAlchemyStore(f"sqlite:///{tmp}", Path(directory, "mlartifacts").as_uri())
        store.engine.dispose()  # no connection left open on the file that is about to move
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
