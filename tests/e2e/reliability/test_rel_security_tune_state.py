"""Inputs never run as code, under a running sweep: a Tune state tampered with in its storage is refused
by --resume before anything loads it, and a failed trial's error pickle replaced in the storage is never
unpickled (the rest of security: tests/unit/reliability/test_rel_security.py).
"""

import json
import os
import pickle
import threading
import time
from pathlib import Path

from helpers import ONE_AT_A_TIME, run_cli
from rel_helpers import TINY_TRIAL, RunsCode, sets
from sweep_helpers import sweep_runs

TAMPER_SPEC = """
[sweep]
name = "tamper"

[[variants]]
name = "only"
"""


ONE_CPU = ["resources.cpus=1", "resources.gpus=0", ONE_AT_A_TIME, "tracking.system_metrics=false",
           "trial.workers=0", "bench.enabled=false"]  # fmt: skip


def _tampered_files(folder: Path, marker: Path) -> dict[str, bytes]:
    """name -> content: a state file of Tune's replaced or added so that loading it runs code."""
    code = pickle.dumps(RunsCode(marker))
    (state,) = sorted(folder.glob("experiment_state-*.json"))[-1:]
    # Tune's JSON embeds pickles as {"_type": "CLOUDPICKLE_FALLBACK", "value": hex}, and loads them
    embedded = {"trial_data": [], "runner_data": {"x": {"_type": "CLOUDPICKLE_FALLBACK", "value": code.hex()}}, "stats": {}}
    return {
        "tuner.pkl": code,
        state.name: json.dumps(embedded).encode(),
        "searcher-state-9999-12-31_00-00-00.pkl": code,  # added: the newest by name is the one Tune loads
    }


def test_resume_refuses_a_tune_state_its_driver_did_not_write(tmp_path, ray_head):
    """Each tampered file: --resume says which in one line, exit 2, and never runs it; the untouched state resumes."""
    env = {**ray_head.env, "XDG_STATE_HOME": str(tmp_path / "state")}  # the driver's own record of its digests
    spec = tmp_path / "tamper.toml"
    spec.write_text(TAMPER_SPEC)
    args = ["run", spec, "--address", ray_head.address, "--quiet", *sets(TINY_TRIAL + ONE_CPU)]
    run_cli(args, cwd=tmp_path, env=env, check_rc=0)
    folder, marker = tmp_path / "ray_results" / "tamper", tmp_path / "ran"
    for name, content in _tampered_files(folder, marker).items():
        path = folder / name
        original = path.read_bytes() if path.exists() else None
        path.write_bytes(content)
        refused = run_cli(args + ["--resume"], cwd=tmp_path, env=env, check_rc=2)
        lines = refused.stderr.splitlines()
        assert len(lines) == 1 and str(tmp_path / "state") in lines[0], refused.stderr
        assert lines[0].startswith(f"tokensweep run: error: Tune's state file {name} in {folder} is not one this sweep's driver wrote")
        assert not marker.exists(), name
        path.write_bytes(original) if original is not None else path.unlink()
    resumed = run_cli(args + ["--resume"], cwd=tmp_path, env=env, check_rc=0)  # what its own driver wrote loads
    assert "Traceback" not in resumed.stderr and not marker.exists()


FAILING_SPEC = """
[sweep]
name = "failing"

[[variants]]
name = "nan"
lr = 10.0             # the maximum TrialConfig allows: NaN within a few steps (test_rel_faults.py)
weight_decay = 10.0
drop_path = 0.0
mixup = 0.0
cutmix = 0.0
randaugment = false

[[variants]]
name = "steady"
epochs = 2
tiny_train_per_class = 300    # still training long after `nan` failed
"""


def test_a_failed_trials_error_pickle_replaced_in_the_storage_never_runs(tmp_path, ray_head):
    """While the sweep runs, its failed trial's error.pkl in the storage is kept replaced by a pickle that runs a
    command (Tune uploads its own copy again at every snapshot); the sweep ends with the command never run."""
    spec = tmp_path / "failing.toml"
    spec.write_text(FAILING_SPEC)
    marker, done = tmp_path / "ran", threading.Event()
    code = pickle.dumps(RunsCode(marker))

    def keep_replacing():
        while not done.is_set():
            for path in (tmp_path / "ray_results" / "failing").glob("nan_*/error.pkl"):
                path.with_name("tampered").write_bytes(code)
                os.replace(path.with_name("tampered"), path)
            time.sleep(0.02)

    writer = threading.Thread(target=keep_replacing, daemon=True)
    writer.start()
    try:
        args = ["run", spec, "--address", ray_head.address, "--quiet", *sets(TINY_TRIAL + ONE_CPU + ["failure.max_failures=0"])]
        run_cli(args, cwd=tmp_path, env=ray_head.env, timeout=600, check_rc=1)  # one trial failed
    finally:
        done.set()
        writer.join()
    assert list((tmp_path / "ray_results" / "failing").glob("nan_*/error.pkl"))  # it was there to be replaced
    assert not marker.exists()
    nan = next(run for run in sweep_runs(tmp_path / "mlflow.db", "failing")[1] if run.info.run_name == "nan")
    assert nan.data.tags["failure_reason"].startswith("NonFiniteLoss: "), nan.data.tags
