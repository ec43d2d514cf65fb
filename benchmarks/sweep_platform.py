"""Target 3: what the sweep platform costs over a plain loop of the same trials.

The same 8 smoke-sized trials (platform/sweeps/smoke.toml's four trials x seeds 0 and 1) run
  - through the platform: `tokensweep run` (Ray Tune, an MLflow sqlite store, a checkpoint every
    epoch), fresh stores in a temporary directory, and
  - through a plain loop: one fresh Python process calling `trials.run_trial` for each trial,
each in its own subprocess, with the same torch threads per trial and one trial at a time
(resources.cpus = all the benchmark's threads, so the sweep cannot win by running trials side by side).

    fixed start-up = from launching `tokensweep run` to Tune's start, which the sweep's parent run
                     records (tokensweep.tune_started_at): interpreter start, validating the spec,
                     importing Ray/MLflow, starting Ray, creating the store
    sweep beyond start-up = sweep wall - fixed start-up   (Tune, the trials, MLflow, Ray shutdown)
    ratio = sweep beyond start-up / loop wall             (the loop's wall includes its imports:
                                                           the sweep's trial worker imports torch too)

Rounds run loop, sweep, sweep, loop (ABBA) so a drift in the machine's load hits both alike; the
figures are medians over rounds.
"""

import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import SectionResult, Settings, Target, env_columns

REPO = Path(__file__).resolve().parent.parent
SMOKE_SPEC = REPO / "platform" / "sweeps" / "smoke.toml"
SEEDS = (0, 1)  # 4 smoke trials x 2 seeds = the target's 8 trials
ROUNDS = ("loop", "sweep", "sweep", "loop")
RUN_TIMEOUT_S = 600
RATIO_GOAL = 1.15
STARTUP_GOAL_S = 12.0
PHASES = ("validate_s", "import_s", "ray_start_s", "mlflow_setup_s", "tune_s", "ray_shutdown_s")


def tokensweep_exe() -> str:
    return shutil.which("tokensweep") or str(Path(sys.executable).with_name("tokensweep"))


def sweep_overrides(threads: int) -> list[str]:
    return [f"grid.seed={list(SEEDS)}", f"resources.cpus={threads}"]


def side_by_side_overrides() -> list[str]:
    """The smoke spec's own resources (1 CPU per trial): as many trials at once as the machine has cores."""
    return [f"grid.seed={list(SEEDS)}"]


def trial_values(threads: int) -> list[dict]:
    """The TrialConfig dicts `tokensweep run` would run for the benchmark's spec, grid order."""
    from tokensweep.spec import load_spec

    spec = load_spec(SMOKE_SPEC, sweep_overrides(threads))
    return [v.values for v in spec.variants]


def run_loop(trials_json: Path) -> float:
    """Wall seconds of a fresh process that imports trials and runs every trial in order."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "benchmarks.sweep_platform", "--loop", str(trials_json)],
                          capture_output=True, text=True, timeout=RUN_TIMEOUT_S, cwd=REPO)  # fmt: skip
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"the plain loop failed ({done.returncode}): {done.stderr.strip()[-300:]}")
    return wall


def run_sweep(threads: int, tmp: Path, overrides: list[str]) -> dict:
    """Wall seconds of `tokensweep run`, its fixed start-up and the phase times its parent run records."""
    tracking_uri = f"sqlite:///{tmp}/mlflow.db"
    cmd = [tokensweep_exe(), "run", str(SMOKE_SPEC), "--fresh", "-q", "--storage", str(tmp / "ray"),
           "--tracking-uri", tracking_uri, "--num-cpus", str(threads)]  # fmt: skip
    for item in overrides:
        cmd += ["--set", item]
    launched, start = time.time(), time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, cwd=tmp)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"tokensweep run failed ({done.returncode}): {done.stderr.strip()[-300:]}")
    phases, tune_started = phase_times(tracking_uri, "smoke")
    return {"wall_s": wall, "fixed_startup_s": tune_started - launched, **phases}


def phase_times(tracking_uri: str, experiment: str) -> tuple[dict, float]:
    """The newest sweep's phase seconds and Tune's start (unix time), as its MLflow parent run records them."""
    from mlflow import MlflowClient

    from tokensweep.tracking import tags as T

    client = MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], f"tags.`{T.ROLE}` = 'sweep'", order_by=["attributes.start_time DESC"],
                              max_results=1) if exp else []  # fmt: skip
    if not runs:
        raise RuntimeError(f"no sweep run of {experiment!r} in {tracking_uri}")
    tags = runs[0].data.tags
    missing = [p for p in PHASES if T.TIME_PREFIX + p not in tags and p != "ray_shutdown_s"] + (
        [T.TUNE_STARTED] if T.TUNE_STARTED not in tags else [])  # fmt: skip
    if missing:
        raise RuntimeError(f"the sweep's parent run records no {', '.join(missing)}")
    phases = {p: float(tags[T.TIME_PREFIX + p]) for p in PHASES if T.TIME_PREFIX + p in tags}
    return phases, float(tags[T.TUNE_STARTED])



def measure(settings: Settings) -> tuple[list[float], list[dict], dict, int]:
    """The ABBA rounds (loops, sweeps one trial at a time), then one sweep with the spec's own resources."""
    threads = settings.threads
    values = trial_values(threads)
    loops, sweeps = [], []
    with tempfile.TemporaryDirectory(prefix="tokensweep-bench-platform-") as tmp:
        trials_json = Path(tmp) / "trials.json"
        trials_json.write_text(json.dumps(values))
        for i, kind in enumerate(ROUNDS):
            if kind == "loop":
                loops.append(run_loop(trials_json))
            else:
                sweeps.append(run_sweep(threads, new_dir(Path(tmp) / f"sweep{i}"), sweep_overrides(threads)))
            print(f"  {kind}: {loops[-1] if kind == 'loop' else sweeps[-1]['wall_s']:.1f} s", flush=True)
        side_by_side = run_sweep(threads, new_dir(Path(tmp) / "side-by-side"), side_by_side_overrides())
        print(f"  sweep, 1 CPU per trial: {side_by_side['wall_s']:.1f} s", flush=True)
    return loops, sweeps, side_by_side, len(values)


def new_dir(path: Path) -> Path:
    path.mkdir()
    return path


def run(settings: Settings) -> SectionResult:
    columns = ("round", "kind", "wall_s", "fixed_startup_s", "beyond_startup_s", "ray_start_s", "mlflow_setup_s",
               "tune_s", "trials")  # fmt: skip
    result = SectionResult("platform", md_columns=columns)
    env = env_columns(settings, "fp32", 0)
    if settings.quick or not SMOKE_SPEC.exists():
        reason = "quick mode" if settings.quick else f"{SMOKE_SPEC} is missing"
        result.rows.append({"round": "skipped", "kind": reason, **env})
        result.targets += [Target("sweep beyond start-up vs plain loop, 8 trials", None, RATIO_GOAL, "x", False, reason),
                           Target("fixed start-up (imports, Ray, MLflow store)", None, STARTUP_GOAL_S, " s", False, reason)]  # fmt: skip
        return result
    try:
        loops, sweeps, side_by_side, n = measure(settings)
    except (RuntimeError, subprocess.TimeoutExpired) as err:
        result.rows.append({"round": "failed", "kind": str(err)[:300], **env})
        result.targets.append(Target("sweep beyond start-up vs plain loop, 8 trials", None, RATIO_GOAL, "x", False, "run failed"))
        return result
    loops_iter, sweeps_iter = iter(loops), iter(sweeps)
    for i, kind in enumerate(ROUNDS):
        if kind == "loop":
            wall = next(loops_iter)
            result.rows.append({"round": i, "kind": "plain loop (trials.run_trial)", "wall_s": wall,
                                "beyond_startup_s": wall, "trials": n, **env})  # fmt: skip
        else:
            s = next(sweeps_iter)
            fixed = s["fixed_startup_s"]
            result.rows.append({"round": i, "kind": "tokensweep run", "wall_s": s["wall_s"], "fixed_startup_s": fixed,
                                "beyond_startup_s": s["wall_s"] - fixed, "trials": n, **s, **env})  # fmt: skip
    side_beyond = side_by_side["wall_s"] - side_by_side["fixed_startup_s"]
    result.rows.append({"round": len(ROUNDS), "kind": "tokensweep run, 1 CPU per trial (the spec's own resources)",
                        "wall_s": side_by_side["wall_s"], "fixed_startup_s": side_by_side["fixed_startup_s"],
                        "beyond_startup_s": side_beyond, "trials": n, **side_by_side, **env})  # fmt: skip
    loop = statistics.median(loops)
    beyond = statistics.median(s["wall_s"] - s["fixed_startup_s"] for s in sweeps)
    startup = statistics.median(s["fixed_startup_s"] for s in sweeps)
    phases = {p: statistics.median(s[p] for s in sweeps) for p in ("validate_s", "import_s", "ray_start_s", "mlflow_setup_s")}
    per_trial = (beyond - loop) / n
    result.targets += [
        Target("sweep beyond start-up vs plain loop, 8 trials", beyond / loop, RATIO_GOAL, "x", False,
               f"median of {len(sweeps)} rounds each: sweep {beyond:.1f} s beyond start-up, loop {loop:.1f} s; "
               f"{per_trial:+.2f} s per trial; with the spec's 1 CPU per trial, trials side by side: "
               f"{side_beyond / loop:.2f}x"),
        Target("fixed start-up (imports, Ray, MLflow store)", startup, STARTUP_GOAL_S, " s", False,
               ", ".join(f"{k[:-2].replace('_', ' ')} {v:.1f} s" for k, v in phases.items())),
    ]  # fmt: skip
    result.notes = [
        f"The same {n} trials (smoke.toml's trial x grid, seeds {list(SEEDS)}; 3 epochs, tiny generated data, "
        f"vit_tiny_*) with {settings.threads} torch threads each and one trial at a time, through `tokensweep run` "
        "(Ray Tune, MLflow sqlite store, a checkpoint per epoch, system metrics) and through a plain loop of "
        "trials.run_trial in a fresh process; each in its own subprocess, rounds in ABBA order, medians.",
        "fixed_startup_s: from launching `tokensweep run` to Tune's start as its parent run records it (interpreter "
        "start, validate, import, Ray start, MLflow setup); beyond_startup_s: the rest of the sweep's wall time (Tune, the trials' worker "
        "with its torch import, MLflow writes, checkpoints, Ray shutdown). The loop's wall includes its imports.",
        "Trials reuse their Ray actor (Tune reuse_actors): the worker imports torch and builds the data once, "
        "not once per trial.",
        f"Last row, not a target: the smoke spec's own resources (1 CPU per trial, so {settings.threads} trials at "
        f"once) against the same loop ({settings.threads} threads per trial): what a user running this spec sees.",
    ]
    return result


def loop_main(trials_json: str) -> None:
    """The plain loop's process: run every trial of the file in order, output silenced."""
    import contextlib
    import io

    from trials import TrialConfig, run_trial

    for values in json.loads(Path(trials_json).read_text()):
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            run_trial(TrialConfig.from_dict(values))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--loop":
        loop_main(sys.argv[2])
    else:
        sys.exit("usage: python -m benchmarks.sweep_platform --loop TRIALS.json (run by `python -m benchmarks platform`)")
