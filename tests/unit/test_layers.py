"""The layers stay one-way: import-linter's contracts in pyproject.toml must hold."""

import os
import subprocess
import sys
import tomllib
from pathlib import Path

from helpers import REPO


def test_import_contracts_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint), "--config", str(REPO / "pyproject.toml")], cwd=REPO, capture_output=True, text=True)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    contracts = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    assert f"{len(contracts)} kept, 0 broken" in out  # every contract was checked, not skipped


def loaded_by_run(*args: str, cache: Path) -> str:
    code = (
        "import sys; from tokensweep.cli import main; "
        f"rc = main(['run', {str(REPO / 'platform/sweeps/smoke.toml')!r}, *{list(args)!r}]); "
        "print(sorted(m for m in ('torch', 'ray', 'mlflow', 'optuna', 'numpy') if m in sys.modules), rc)"
    )
    env = {**os.environ, "XDG_CACHE_HOME": str(cache)}
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    return result.stdout.strip().splitlines()[-1] if result.stdout.strip() else result.stderr


def test_validating_a_sweep_loads_no_heavy_framework(tmp_path):
    """`tokensweep run` checks every trial of a spec (models, overrides, data) without loading torch, Ray or
    MLflow: bad input is answered at once. The plan that ends `--dry-run` calibrates with torch the first
    time, never with Ray or MLflow; from the calibrations it cached, it loads none of them."""
    assert loaded_by_run("--dry-run", "--set", "trial.epochs=0", cache=tmp_path) == "[] 2"
    assert loaded_by_run("--dry-run", "--set", "sweep.budget_hours=-1", cache=tmp_path) == "[] 2"
    assert loaded_by_run("--dry-run", cache=tmp_path) == "['numpy', 'torch'] 0"
    assert loaded_by_run("--dry-run", cache=tmp_path) == "[] 0"
