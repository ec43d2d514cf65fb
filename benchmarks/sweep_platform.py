"""Target 3 (hook): the sweep platform's overhead. Runs only where `tokensweep run` exists.

Measures the smoke sweep (platform/sweeps/smoke.toml, 1 epoch per trial) through the platform
(`tokensweep run`: Ray Tune + MLflow) against the same trials run directly in this process with
trials.run_trial; the difference is what the platform costs. Both write to a temporary directory.
TODO(issue #5, target 3): align the figures with the target's exact wording once the platform
is finished; until then this section reports what it measured and sets no pass/fail.
"""

import contextlib
import io
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

from benchmarks.common import SectionResult, Settings, Target, env_columns

REPO = Path(__file__).resolve().parent.parent
SMOKE_SPEC = REPO / "platform" / "sweeps" / "smoke.toml"
SWEEP_TIMEOUT_S = 600


def tokensweep_run_available() -> bool:
    """True where the `tokensweep` CLI has its `run` command (the sweep platform is built)."""
    exe = shutil.which("tokensweep") or str(Path(sys.executable).with_name("tokensweep"))
    if not Path(exe).exists() or not SMOKE_SPEC.exists():
        return False
    done = subprocess.run([exe, "run", "--help"], capture_output=True, text=True, timeout=60)
    return done.returncode == 0


def smoke_trials() -> list[dict]:
    """The smoke spec's trials as TrialConfig values (its [trial] table over its [grid]), 1 epoch each."""
    with open(SMOKE_SPEC, "rb") as f:
        spec = tomllib.load(f)
    base = {**spec["trial"], "epochs": 1, "warmup_epochs": 0.0, "threads": spec["resources"]["cpus"]}
    trials = []
    for embedding in spec["grid"]["embedding"]:
        iters = spec["grid"].get("cluster_iters", [None]) if embedding == "supertoken" else [None]
        for i in iters:
            values = {**base, "model": base["model"].rsplit("_", 1)[0] + f"_{embedding}"}
            trials.append(values if i is None else {**values, "cluster_iters": i})
    return trials


def direct_seconds() -> tuple[float, int]:
    """Wall time of the smoke sweep's trials run one after another with trials.run_trial."""
    from trials import TrialConfig, run_trial

    trials = smoke_trials()
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):  # progress lines
        for values in trials:
            run_trial(TrialConfig.from_dict(values))
    return time.perf_counter() - start, len(trials)


def platform_seconds(settings: Settings) -> float:
    """Wall time of `tokensweep run` on the smoke spec, 1 epoch per trial, fresh stores."""
    with tempfile.TemporaryDirectory(prefix="tokensweep-bench-platform-") as tmp:
        cmd = [str(Path(sys.executable).with_name("tokensweep")), "run", str(SMOKE_SPEC), "--fresh", "-q",
               "--set", "trial.epochs=1", "--set", "trial.warmup_epochs=0.0", "--storage", f"{tmp}/ray", "--tracking-uri", f"sqlite:///{tmp}/mlflow.db",
               "--num-cpus", str(settings.threads)]  # fmt: skip
        start = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=SWEEP_TIMEOUT_S, cwd=tmp)
        elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"tokensweep run failed ({done.returncode}): {done.stderr.strip()[-300:]}")
    return elapsed


def run(settings: Settings) -> SectionResult:
    result = SectionResult("platform", md_columns=("status", "direct_s", "platform_s", "overhead_s",
                                                   "overhead_per_trial_s", "trials"))  # fmt: skip
    if settings.quick or not tokensweep_run_available():
        reason = "quick mode" if settings.quick else "`tokensweep run` is not available yet"
        result.rows.append({"status": f"skipped: {reason}", **env_columns(settings, "fp32", 0)})
        result.targets.append(Target("platform overhead per trial", None, None, "s", False, reason))
        return result
    try:
        direct, trials_run = direct_seconds()
        through_platform = platform_seconds(settings)
    except (RuntimeError, subprocess.TimeoutExpired) as err:
        result.rows.append({"status": f"failed: {err}", **env_columns(settings, "fp32", 0)})
        result.targets.append(Target("platform overhead per trial", None, None, "s", False, "run failed"))
        return result
    overhead = through_platform - direct
    result.rows.append({"status": "measured", "direct_s": direct, "platform_s": through_platform,
                        "overhead_s": overhead, "overhead_per_trial_s": overhead / trials_run,
                        "trials": trials_run, **env_columns(settings, "fp32", 0)})  # fmt: skip
    # No goal yet (see the module docstring): the figure is reported, not judged.
    result.targets.append(Target("platform overhead per trial", overhead / trials_run, None, "s", False,
                                 "hook: target 3 pending"))  # fmt: skip
    result.notes = [
        "direct_s: the smoke sweep's 4 trials (1 epoch each) run one after another in this process; "
        "platform_s: `tokensweep run` on the same spec (Ray start-up, Tune, MLflow) in a subprocess.",
    ]
    return result
