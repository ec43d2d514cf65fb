"""End-to-end tests: every test here starts Ray, an MLflow store or server, a browser or a compiler,
so each is marked `slow` here (`-m "not slow"` leaves this tree out); no test needs its own marker.

Fixtures shared by the whole tree: the session's Ray token (ray_token_env), one Ray head per test
process (ray_head), and the services of a cluster stack (tests/support/stack_fixtures.py).
"""

import os
from pathlib import Path

import pytest
from stack_fixtures import Postgres, S3Server, postgres_missing_reason
from sweep_helpers import ray_head, ray_token_env  # noqa: F401  (fixtures)

HERE = Path(__file__).resolve().parent


# The longest files (a few minutes of CPU each on 2 cores), in the order they start: scripts/test runs a
# file per worker in collection order (--dist loadfile --no-loadscope-reorder), so a long file left to
# the end would run alone while the other worker idles. The rest follow in path order, then tests/unit.
LONGEST_FIRST = (
    "test_documented_commands_run.py",
    "platform/test_sweep_ray.py",
    "platform/test_sweep_shipped.py",
    "reliability/test_rel_signals.py",
    "platform/test_plan_sweep.py",
    "reliability/test_rel_storage_full.py",
    "platform/test_gpu_scheduling.py",
    "reliability/test_rel_cluster_stack.py",
    "reliability/test_rel_store_gone.py",
)


def start_rank(item) -> int:
    path = item.path.relative_to(HERE).as_posix() if HERE in item.path.parents else None
    return LONGEST_FIRST.index(path) if path in LONGEST_FIRST else len(LONGEST_FIRST)


@pytest.hookimpl(tryfirst=True)  # before `-m` selects by marker
def pytest_collection_modifyitems(items):
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.slow)
    items.sort(key=lambda item: (HERE not in item.path.parents, start_rank(item)))  # stable: path order within


@pytest.fixture(scope="module")
def postgres():
    """A PostgreSQL server of the test's own on 127.0.0.1 (Debian's package). Skipped where it is not
    installed; in CI (CI=true, .ci/run installs it) a missing PostgreSQL fails instead of hiding."""
    reason = postgres_missing_reason()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must install PostgreSQL: {reason}")
        pytest.skip(reason)
    server = Postgres()
    try:
        yield server.start()
    finally:
        server.cleanup()  # also after a failed start


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory):
    """moto's S3 server on 127.0.0.1; its `env` is a user's settings for a local S3 / MinIO."""
    server = S3Server(tmp_path_factory.mktemp("s3"))
    try:
        yield server.start()
    finally:
        server.stop()
