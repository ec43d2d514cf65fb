"""`export` and `dashboard` on a damaged MLflow sqlite store (what a store deleted mid-sweep can leave behind:
a file MLflow's open connections made again, cut short or with broken pages): one line naming the store and
what is wrong with it, exit code 2, nothing written."""

import shutil

import pytest

from helpers import base_env, run_cli


@pytest.fixture(scope="module")
def mlflow_store(tmp_path_factory):
    """A real, complete MLflow sqlite store (its tables built by MLflow's own migrations)."""
    from tokensweep.tracking.store import ensure_sqlite_store

    db = tmp_path_factory.mktemp("store") / "mlflow.db"
    ensure_sqlite_store(str(db))
    return db


def truncated(db, out):
    data = db.read_bytes()
    out.write_bytes(data[: len(data) // 3])


def broken_pages(db, out):
    data = bytearray(db.read_bytes())
    page = 4096  # sqlite's default page size: page 2 onwards is MLflow's tables and indexes
    data[page : len(data) - page] = bytes(range(256)) * ((len(data) - 2 * page) // 256)
    out.write_bytes(bytes(data))


def empty(db, out):
    out.write_bytes(b"")  # what sqlite leaves when a deleted store's path is opened again


@pytest.mark.parametrize(
    "command, damage",
    [("export", truncated), ("export", broken_pages), ("export", empty), ("dashboard", broken_pages)],
    ids=["export-truncated", "export-broken-pages", "export-empty", "dashboard-broken-pages"],
)
def test_a_damaged_store_is_one_line_and_exit_2(tmp_path, mlflow_store, command, damage):
    damage(mlflow_store, tmp_path / "mlflow.db")
    before = sorted(p.name for p in tmp_path.iterdir())
    proc = run_cli([command, "smoke"], cwd=tmp_path, env=base_env(), timeout=120)
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert lines[0].startswith(f"tokensweep {command}: error: cannot read the MLflow store at sqlite:///{tmp_path}/mlflow.db: ")
    assert "restore it from a backup, or pass another --tracking-uri" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written


def test_the_store_is_sound_before_it_is_damaged(tmp_path, mlflow_store):
    """The same store, undamaged, is read: the refusal above is about the damage."""
    shutil.copy(mlflow_store, tmp_path / "mlflow.db")
    proc = run_cli(["export", "smoke"], cwd=tmp_path, env=base_env(), timeout=120)
    assert proc.returncode == 2 and "no experiment 'smoke'" in proc.stderr, proc.stderr[-3000:]
