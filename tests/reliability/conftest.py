"""Fixtures of the reliability tests (helpers in rel_helpers.py).

The platform tests' helpers (tests/platform/sweep_helpers.py: the CLI in a subprocess, a Ray head
with token auth, MLflow readers) are reused, not copied: their folder goes on sys.path here, since
test folders are not packages and pytest only adds a folder when it collects it. So does tests/
itself, for the services of a cluster stack (tests/stack_fixtures.py: PostgreSQL, an S3 endpoint).
"""

import os
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS / "platform"))
sys.path.insert(0, str(TESTS))

from stack_fixtures import Postgres, S3Server, postgres_missing_reason  # noqa: E402
from sweep_helpers import ray_head, ray_token_env  # noqa: E402,F401  (fixtures)


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
