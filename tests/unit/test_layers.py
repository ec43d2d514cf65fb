"""The layers stay one-way: import-linter's contracts in pyproject.toml must hold."""

import subprocess
import sys
from pathlib import Path

from helpers import REPO


def test_import_contracts_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint), "--config", str(REPO / "pyproject.toml")], cwd=REPO, capture_output=True, text=True)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "3 kept, 0 broken" in out  # every contract was checked, not skipped


def test_validating_a_sweep_loads_no_heavy_framework():
    """`tokensweep run --dry-run` checks every trial of a spec (models, overrides, data) without loading
    torch, Ray or MLflow: bad input is answered at once, and a sweep's fixed start-up stays short."""
    code = (
        "import sys; from tokensweep.cli import main; "
        f"rc = main(['run', {str(REPO / 'platform/sweeps/smoke.toml')!r}, '--dry-run']); "
        "print(sorted(m for m in ('torch', 'ray', 'mlflow', 'optuna', 'numpy') if m in sys.modules), rc)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[] 0", result.stdout
