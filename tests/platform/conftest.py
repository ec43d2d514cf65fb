"""Fixtures of the platform tests (helpers live in sweep_helpers.py)."""

from sweep_helpers import ray_head, ray_token_env  # noqa: F401  (fixtures)
