"""Fixtures: a real MLflow sqlite store with one small sweep (see dashboard_store.py)."""

import pytest

from dashboard_store import Store, make_store


@pytest.fixture(scope="session")
def mlflow_store(tmp_path_factory) -> Store:
    """Shared, read-only: tests that write (artifacts) use `fresh_store`."""
    return make_store(tmp_path_factory.mktemp("mlflow"))


@pytest.fixture
def fresh_store(mlflow_store, tmp_path, request) -> Store:
    """A sweep of its own (own experiment, own artifacts) in the shared database, for tests that write."""
    return make_store(tmp_path, experiment=f"sweep-{request.node.name}", db_dir=mlflow_store.db_dir)
