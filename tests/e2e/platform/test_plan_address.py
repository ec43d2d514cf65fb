"""`tokensweep plan --address` and `run --dry-run --address`: the slots are the running cluster's (the shared
test head: 2 CPUs, no GPU), asked once through Ray; a calibration file keeps the trials from being timed."""

import json

import pytest

from helpers import SWEEPS, run_cli
from tokensweep import plan as P
from tokensweep.spec import load_spec
from trials.measure.calibrate import Calibration

pytestmark = pytest.mark.slow

SMOKE = str(SWEEPS / "smoke.toml")


def _cpu_calibrations(path) -> str:
    """Calibrations of the smoke sweep's four architectures, as `plan --save-calibration` writes them on a CPU."""
    entries = []
    for v in load_spec(SMOKE).variants:
        c = Calibration(device="cpu: a test CPU", batch=v.config.batch_size, precision="fp32", threads=1, workers=0,
                        train_images_per_sec=400.0, eval_images_per_sec=1600.0, loader_images_per_sec=4000.0,
                        setup_s=1.0, measure_s=2.0, train_images=2000, val_images=400)  # fmt: skip
        entries.append({"key": P.arch_key(v.config), "calibration": c.to_dict()})
    path.write_text(json.dumps({"calibrations": entries}))
    return str(path)


def test_plan_and_dry_run_count_the_slots_of_the_cluster_at_address(tmp_path, ray_head):
    cal = _cpu_calibrations(tmp_path / "cal.json")
    common = ["--address", ray_head.address, "--calibration", cal]
    plan = json.loads(run_cli(["plan", SMOKE, *common, "--json"], cwd=tmp_path, env=ray_head.env, check_rc=0).stdout)
    assert plan["slots_from"] == f"the cluster at {ray_head.address}" and plan["slots"] == 2  # 2 CPUs, 1 per trial
    assert {a["source"] for a in plan["architectures"]} == {"file"}
    dry = run_cli(["run", SMOKE, *common, "--dry-run", "--set", "resources.cpus=2"], cwd=tmp_path, env=ray_head.env,
                  check_rc=0)  # fmt: skip
    assert f"4 trial(s) on 1 CPU slot(s) (the cluster at {ray_head.address})" in dry.stdout
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "ray_results").exists()
