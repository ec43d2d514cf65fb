"""Fixtures of the reliability tests (helpers in rel_helpers.py).

The platform tests' helpers (tests/platform/sweep_helpers.py: the CLI in a subprocess, a Ray head
with token auth, MLflow readers) are reused, not copied: their folder goes on sys.path here, since
test folders are not packages and pytest only adds a folder when it collects it.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "platform"))

from sweep_helpers import ray_head, ray_token_env  # noqa: E402,F401  (fixtures)
