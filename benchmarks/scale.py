"""Sweeps at scale: what a sweep costs per trial as it grows, and how fast a big grid starts and stops.

    python -m benchmarks scale [--quick]        (or: python -m benchmarks.scale [--sweeps 100 1000] ...)

Trivial trials (tiny backbone and data, 1 epoch of 1 step, no final measurement; a grid over
`seed`) measured four ways, each in its own subprocess:
  - sweeps through `tokensweep run` (fresh stores in a temporary directory, a local Ray, one trial at
    a time: resources.cpus = 2 of 2), at 100 and 1,000 trials:
      first trial     from Ray's start (the parent run's tune_started_at minus its ray_start_s and
                      mlflow_setup_s phases) to the first child run's start in MLflow
      driver RSS      peak of the `tokensweep run` process (psutil, polled every 0.2 s), and its CPU
                      seconds per trial (a figure a busy machine inflates less than wall time); its
                      growth per trial from the first trial's start to the peak
      platform/trial  (sweep wall - fixed start-up - trials x one trial's own time) / trials, where
                      fixed start-up = launch to the first trial's start (interpreter, validation, Ray,
                      MLflow, Tune's first worker), and a trial's own time = the median of a
                      plain loop of `trials.run_trial` over the same trials in one process (after its
                      first, which pays the imports, as the sweep's reused actor does once)
  - a start and a Ctrl-C at 10,000 trials: SIGINT a few seconds after the first trial starts; how
    long the driver takes to end, its exit code, what MLflow holds RUNNING after;
  - variant generation alone (validation + the searcher's configs and its pickle, no Ray) at 10,000 and
    100,000 trials, and `tokensweep run --dry-run` at 100,000;
  - dashboard and export at 100 to 10,000 runs (benchmarks.scale_dashboard.measure, no browser).
Every figure is printed beside its ratio per 10x of trials: 1x per 10x is constant, 10x linear.
Nothing here is a timed test: the figures are printed, side by side.
--quick (the tests' run) proves the code paths run, one size of each at the fewest Ray starts: a sweep of
3 trials, a Ctrl-C at 2,000, a plain loop of 3, variant generation at 3,000, dashboard and export at 45 runs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pickle
import resource
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# quick: one size of each, the fewest Ray starts and trials that run every code path; the trends across
# sizes are tests/unit/benchmarks/test_scale_benchmark.py's, on figures of the same shape
SWEEPS, QUICK_SWEEPS = (100, 1_000), (3,)
VARIANTS, QUICK_VARIANTS = (10_000, 100_000), (3_000,)
DASHBOARD, QUICK_DASHBOARD = (100, 1_000, 10_000), (45,)
INTERRUPT, QUICK_INTERRUPT = 10_000, 2_000  # quick: a grid that once started no trial in 4 minutes
PER_TRIAL_GOAL_S = 0.5  # beyond the trial's own work, this 2-core machine
CONSTANT_GOAL = 1.5  # the per-trial cost from the smallest sweep to the largest
FIRST_TRIAL_GOAL_S = 30.0
RSS_GOAL_MB = 1024.0
INTERRUPT_GOAL_S = 10.0
LINEAR = 10.0  # growth per 10x of trials
LOOP_TRIALS, QUICK_LOOP_TRIALS = 21, 3  # the plain loop: the first pays the imports, the others a trial's own time
RUN_TIMEOUT_S = 3600

TRIAL = dict(
    backbone="tiny", embedding="patch", dataset="tiny", tiny_classes=2, tiny_train_per_class=4, tiny_val_per_class=2,
    batch_size=8, epochs=1, max_steps_per_epoch=1, measure=False, workers=0, randaugment=False, mixup=0.0,
    cutmix=0.0, random_erasing=0.0, label_smoothing=0.0, drop_path=0.0,
)  # fmt: skip


def spec_text(n: int, name: str = "scale") -> str:
    """A grid of n trivial trials (seeds 0..n-1), one at a time on 2 CPUs."""
    trial = "\n".join(f"{k} = {json.dumps(v)}" for k, v in TRIAL.items())
    return (
        f'[sweep]\nname = "{name}"\nmax_trials = {max(n, 10_000)}\n\n[trial]\n{trial}\n\n'
        f"[grid]\nseed = {list(range(n))}\n\n[resources]\ncpus = 2\n"
    )


def write_spec(path: Path, n: int) -> Path:
    path.write_text(spec_text(n))
    return path


def tokensweep_exe() -> str:
    return shutil.which("tokensweep") or str(Path(sys.executable).with_name("tokensweep"))


def child_env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "MLFLOW_", "TOKENSWEEP_", "TUNE_"))}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    return env


def load() -> float:
    return round(os.getloadavg()[0], 2)


# --- variant generation -------------------------------------------------------------------------------


def variants_main(spec_path: str) -> None:
    """The subprocess of `measure_variants`: validate, build the searcher's configs, print figures as JSON."""
    from tokensweep.spec import load_spec
    from tokensweep.sweep import tuner
    from tokensweep.payload import Platform, grid_config

    begin, cpu = time.perf_counter(), time.process_time()
    spec = load_spec(spec_path, [])
    validated, validated_cpu = time.perf_counter(), time.process_time()
    platform = Platform("sqlite:///mlflow.db", spec.name, False, 10.0, ())
    configs = [grid_config(i, v.name, v.values, platform) for i, v in enumerate(spec.variants)]
    searcher = tuner.GridSearcher(configs)
    pickled = len(pickle.dumps(searcher))  # what Tuner saves with the experiment
    done = time.perf_counter()
    print(json.dumps(dict(trials=len(spec.variants), validate_s=validated - begin, validate_cpu_s=validated_cpu - cpu,
                          variants_cpu_s=time.process_time() - cpu, configs_s=done - validated,
                          variants_s=done - begin, searcher_mb=pickled / 1e6,
                          variants_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)))  # fmt: skip


def measure_variants(n: int, work: Path) -> dict:
    spec = write_spec(work / f"variants-{n}.toml", n)
    done = subprocess.run([sys.executable, "-m", "benchmarks.scale", "--variants-of", str(spec)], capture_output=True,
                          text=True, timeout=RUN_TIMEOUT_S, cwd=REPO, env=child_env())  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"variant generation of {n:,} trials failed: {done.stderr.strip()[-500:]}")
    row = json.loads(done.stdout.strip().splitlines()[-1])
    begin, children = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    dry = subprocess.run([tokensweep_exe(), "run", str(spec), "--dry-run"], stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True, timeout=RUN_TIMEOUT_S, cwd=work, env=child_env())  # fmt: skip
    if dry.returncode != 0:
        raise RuntimeError(f"--dry-run of {n:,} trials failed: {dry.stderr.strip()[-500:]}")
    row["dry_run_s"] = time.perf_counter() - begin
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    row["dry_run_cpu_s"] = after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime
    return row


# --- sweeps -----------------------------------------------------------------------------------------


class Driver:
    """`tokensweep run` in a subprocess, its RSS polled; optionally interrupted once its first trial runs."""

    def __init__(self, spec: Path, work: Path):
        self.work, self.db = work, work / "mlflow.db"
        self.log = open(work / "driver.log", "w")
        cmd = [tokensweep_exe(), "run", str(spec), "--fresh", "-q", "--storage", str(work / "ray"),
               "--tracking-uri", f"sqlite:///{self.db}", "--num-cpus", "2"]  # fmt: skip
        self.launched = time.time()
        self.proc = subprocess.Popen(cmd, cwd=work, env=child_env(), stdout=self.log, stderr=subprocess.STDOUT)
        self.peak_rss = self.cpu_s = 0
        self.first_trial_rss = self.first_trial_tree_cpu = None  # when the first trial run appeared
        self._process, self._next_look, self._tree_cpu = None, 0.0, {}

    def poll_rss(self) -> None:
        """The driver's peak RSS and CPU seconds, and the CPU seconds of it and every process it started
        (Ray's, the trials' workers): CPU is what a busy machine inflates far less than wall time."""
        import psutil

        try:
            self._process = self._process or psutil.Process(self.proc.pid)
            with self._process.oneshot():
                self.peak_rss = max(self.peak_rss, self._process.memory_info().rss)
                self.cpu_s = cpu_of(self._process)
            for child in self._process.children(recursive=True):
                try:
                    self._tree_cpu[child.pid] = max(self._tree_cpu.get(child.pid, 0.0), cpu_of(child))
                except psutil.Error:
                    pass
        except psutil.Error:
            pass
        if self.first_trial_rss is None and time.time() >= self._next_look:
            self._next_look = time.time() + 1.0
            if run_statuses(self.db):
                self.first_trial_rss, self.first_trial_tree_cpu = self.peak_rss, self.tree_cpu_s

    @property
    def tree_cpu_s(self) -> float:
        return self.cpu_s + sum(self._tree_cpu.values())

    def wait(self, timeout: float, until=None) -> bool:
        """Poll until the driver exits (False) or `until()` holds (True)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            self.poll_rss()
            if self.proc.poll() is not None:
                return False
            if until is not None and until():
                return True
            time.sleep(0.2)
        self.proc.kill()
        self.proc.wait()
        raise RuntimeError(f"tokensweep run did not end within {timeout:.0f} s; log: {self.tail()}")

    def tail(self) -> str:
        """The driver's warnings and errors, then the end of its output."""
        self.log.flush()
        lines = (self.work / "driver.log").read_text().splitlines()
        flagged = [line for line in lines if any(w in line.lower() for w in ("error", "warning", "traceback"))]
        return "\n".join(flagged[-20:] + ["..."] + lines[-15:])

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def cpu_of(process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def run_statuses(db: Path, role: str = "trial") -> dict[str, int]:
    """Runs of a role ("trial" or "sweep", the parent) by status, read straight from the sqlite file while the
    sweep writes it."""
    if not db.exists():
        return {}
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as con:
            rows = con.execute("select r.status, count(*) from runs r join tags t on t.run_uuid = r.run_uuid "
                               "where t.key = 'tokensweep.role' and t.value = ? group by r.status", (role,)).fetchall()  # fmt: skip
    except sqlite3.Error:
        return {}
    return dict(rows)


def sweep_record(db: Path) -> dict:
    """The parent run's phase times and Tune's start, and the children's first start and statuses."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        parent, parent_status = con.execute(
            "select r.run_uuid, r.status from runs r join tags t on t.run_uuid = r.run_uuid "
            "where t.key = 'tokensweep.role' and t.value = 'sweep' order by r.start_time desc limit 1"
        ).fetchone()
        tags = dict(con.execute("select key, value from tags where run_uuid = ?", (parent,)).fetchall())
        first_start, last_end = con.execute(
            "select min(r.start_time), max(r.end_time) from runs r join tags t on t.run_uuid = r.run_uuid "
            "where t.key = 'mlflow.parentRunId' and t.value = ?",
            (parent,),
        ).fetchone()
        starts = [row[0] / 1000 for row in con.execute(
            "select r.start_time from runs r join tags t on t.run_uuid = r.run_uuid "
            "where t.key = 'mlflow.parentRunId' and t.value = ? order by r.start_time", (parent,))]  # fmt: skip
    times = {k.removeprefix("tokensweep.time."): float(v) for k, v in tags.items() if k.startswith("tokensweep.time.")}
    times.update(pace(starts))
    return dict(parent_status=parent_status, tune_started=float(tags["tokensweep.tune_started_at"]),
                first_child_start=first_start / 1000 if first_start else None,
                last_child_end=last_end / 1000 if last_end else None, **times)  # fmt: skip


def pace(starts: list[float]) -> dict:
    """Seconds between trial starts early in a sweep and late in it (medians over a tenth of its trials,
    at least 3): a cost that grows with the trials done so far shows as late > early within one sweep."""
    k = max(3, len(starts) // 10)
    if len(starts) < 2 * k + 1:
        return {}
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    return {"early_s_per_trial": statistics.median(gaps[:k]), "late_s_per_trial": statistics.median(gaps[-k:])}


def run_sweep(n: int, work: Path, own: tuple[float, float]) -> dict:
    """One sweep of n trials to its end; its figures."""
    work.mkdir()
    driver = Driver(write_spec(work / "scale.toml", n), work)
    try:
        driver.wait(RUN_TIMEOUT_S)
        wall = time.time() - driver.launched
        if driver.proc.returncode != 0:
            raise RuntimeError(f"a sweep of {n:,} trials exited {driver.proc.returncode}: {driver.tail()}")
    finally:
        driver.close()
    ended = time.time()
    rec, statuses = sweep_record(driver.db), run_statuses(driver.db)
    if statuses.get("FINISHED") != n:
        raise RuntimeError(f"a sweep of {n:,} trials finished {statuses} trial runs")
    own_s, own_cpu_s = own
    ray_started = rec["tune_started"] - rec.get("ray_start_s", 0) - rec.get("mlflow_setup_s", 0)
    fixed = rec["first_child_start"] - driver.launched  # what any sweep pays once, its first trial's worker included
    beyond = wall - fixed
    return dict(
        trials=n, kind="sweep", load_avg_1m=load(), wall_s=wall, fixed_startup_s=fixed, beyond_startup_s=beyond,
        first_trial_s=rec["first_child_start"] - ray_started, first_trial_after_launch_s=rec["first_child_start"] - driver.launched,
        driver_peak_rss_mb=driver.peak_rss / 2**20, trial_own_s=own_s, platform_s_per_trial=(beyond - n * own_s) / n,
        driver_cpu_s=driver.cpu_s, driver_cpu_s_per_trial=driver.cpu_s / n, tree_cpu_s=driver.tree_cpu_s,
        trial_own_cpu_s=own_cpu_s,
        platform_cpu_s_per_trial=(driver.tree_cpu_s - (driver.first_trial_tree_cpu or 0) - n * own_cpu_s) / n,
        driver_rss_kb_per_trial=(driver.peak_rss - (driver.first_trial_rss or driver.peak_rss)) / 1024 / n,
        end_s=ended - rec["last_child_end"], tune_s=rec.get("tune_s"), early_s_per_trial=rec.get("early_s_per_trial"),
        late_s_per_trial=rec.get("late_s_per_trial"), after_tune_s=rec.get("sweep_s", 0) - rec.get("tune_s", 0) - rec.get("mlflow_setup_s", 0)
        - rec.get("ray_start_s", 0), ray_shutdown_s=rec.get("ray_shutdown_s"),
    )  # fmt: skip


def interrupt_sweep(n: int, work: Path, after_s: float = 3.0) -> dict:
    """Start a sweep of n trials, SIGINT it `after_s` after its first trial run appears; how it ends."""
    work.mkdir()
    driver = Driver(write_spec(work / "scale.toml", n), work)
    try:
        started = driver.wait(RUN_TIMEOUT_S, until=lambda: sum(run_statuses(driver.db).values()) > 0)
        if not started:
            raise RuntimeError(f"a sweep of {n:,} trials ended before its first trial: {driver.tail()}")
        first = time.time()
        if not driver.wait(after_s + 60, until=lambda: time.time() - first >= after_s):
            raise RuntimeError(f"a sweep of {n:,} trials ended before it could be interrupted: {driver.tail()}")
        sent = time.time()
        driver.proc.send_signal(signal.SIGINT)
        ended = not driver.wait(120)
        stop_s = time.time() - sent
        code = driver.proc.returncode
    finally:
        driver.close()
    rec, statuses = sweep_record(driver.db), run_statuses(driver.db)
    ray_started = rec["tune_started"] - rec.get("ray_start_s", 0) - rec.get("mlflow_setup_s", 0)
    return dict(
        trials=n, kind="start + Ctrl-C", load_avg_1m=load(), first_trial_s=rec["first_child_start"] - ray_started,
        first_trial_after_launch_s=rec["first_child_start"] - driver.launched, driver_peak_rss_mb=driver.peak_rss / 2**20,
        interrupt_to_exit_s=stop_s if ended else None, exit_code=code, parent_status=rec["parent_status"],
        trial_runs=sum(statuses.values()), running_after=statuses.get("RUNNING", 0), trial_statuses=statuses,
        sweep_statuses=run_statuses(driver.db, "sweep"),
        signal_to_tune_end_s=rec["tune_started"] + rec["tune_s"] - sent if "tune_s" in rec else None,
        ray_shutdown_s=rec.get("ray_shutdown_s"),
    )  # fmt: skip


# --- a trial's own time -------------------------------------------------------------------------------


def loop_main(spec_path: str, count: int) -> None:
    """The plain loop's subprocess: the spec's first `count` trials through trials.run_trial; seconds each."""
    import contextlib
    import io

    from tokensweep.spec import load_spec
    from trials import run_trial

    times = []
    for variant in load_spec(spec_path, []).variants[:count]:
        begin, cpu = time.perf_counter(), time.process_time()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            run_trial(variant.config, progress=False)
        times.append((time.perf_counter() - begin, time.process_time() - cpu))
    print(json.dumps(times))


def trial_own_time(work: Path, count: int = LOOP_TRIALS) -> tuple[float, float]:
    """Wall and CPU seconds of one trial in a plain loop of `count`: the medians after the first (a busy
    machine's spikes are not the trial's own work)."""
    spec = write_spec(work / "loop.toml", count)
    done = subprocess.run([sys.executable, "-m", "benchmarks.scale", "--loop", str(spec), str(count)],
                          capture_output=True, text=True, timeout=RUN_TIMEOUT_S, cwd=REPO, env=child_env())  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"the plain loop failed: {done.stderr.strip()[-500:]}")
    times = json.loads(done.stdout.strip().splitlines()[-1])[1:]
    return statistics.median(w for w, _ in times), statistics.median(c for _, c in times)


# --- the section ----------------------------------------------------------------------------------------


def per_10x(rows: list[dict], key: str, size: str = "trials") -> float | None:
    """Growth of `key` per 10x of `size` between the smallest and the largest row that have it."""
    have = [r for r in rows if isinstance(r.get(key), (int, float)) and r[key] > 0]
    if len(have) < 2 or have[-1][size] == have[0][size]:
        return None
    return (have[-1][key] / have[0][key]) ** (1 / math.log10(have[-1][size] / have[0][size]))


def marginal(rows: list[dict], key: str) -> float | None:
    """Seconds of `key` per added trial from the smallest sweep to the largest: a cost without the fixed part."""
    if len(rows) < 2 or rows[-1]["trials"] == rows[0]["trials"]:
        return None
    return (rows[-1][key] - rows[0][key]) / (rows[-1]["trials"] - rows[0]["trials"])


def trend(rows: list[dict], key: str, size: str = "trials") -> str:
    figures = "  ".join(f"{r[size]:>7,}: {r[key]:.3g}" for r in rows if isinstance(r.get(key), (int, float)))
    ratio = per_10x(rows, key, size)
    return f"  {key:<24} {figures}" + (f"   x{ratio:.2f} per 10x" if ratio else "")


def measure(sweeps=SWEEPS, variants=VARIANTS, dashboard=DASHBOARD, interrupt: int | None = INTERRUPT,
            loop: int = LOOP_TRIALS, log=print) -> dict:
    """Every figure of the section: {"sweeps": rows, "interrupt": row | None, "variants": rows, "dashboard": rows}."""
    from benchmarks import scale_dashboard

    out: dict = {"sweeps": [], "interrupt": None, "variants": [], "dashboard": []}
    work = Path(tempfile.mkdtemp(prefix="tokensweep-bench-scale-"))
    try:
        for n in variants:
            out["variants"].append(measure_variants(n, work))
            log(f"  variants {n:,}: " + ", ".join(f"{k} {v:.3g}" for k, v in out["variants"][-1].items() if k != "trials"))
        if sweeps:
            own = trial_own_time(work, loop)
            log(f"  a trial's own time (plain loop): {own[0]:.3f} s, {own[1]:.3f} s of CPU")
            for n in sweeps:
                row = run_sweep(n, work / f"sweep-{n}", own)
                out["sweeps"].append(row)
                log(f"  sweep {n:,}: " + ", ".join(f"{k} {v:.3g}" for k, v in row.items() if isinstance(v, float)))
        if interrupt:
            out["interrupt"] = interrupt_sweep(interrupt, work / f"interrupt-{interrupt}")
            log(f"  start + Ctrl-C at {interrupt:,}: {out['interrupt']}")
        if dashboard:
            out["dashboard"] = scale_dashboard.measure(dashboard, browser=False, log=log)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out


def print_trends(figures: dict, log=print) -> None:
    log("trend (x per 10x of trials: 1 constant, 10 linear):")
    for key in ("platform_s_per_trial", "platform_cpu_s_per_trial", "driver_cpu_s_per_trial", "first_trial_s", "driver_peak_rss_mb",
                "driver_rss_kb_per_trial", "early_s_per_trial", "late_s_per_trial", "end_s", "after_tune_s",
                "beyond_startup_s"):
        log(trend(figures["sweeps"], key))
    sweeps = figures["sweeps"]
    if marginal(sweeps, "beyond_startup_s") is not None:
        log(f"  per added trial, {sweeps[0]['trials']:,} -> {sweeps[-1]['trials']:,}: "
            f"{marginal(sweeps, 'beyond_startup_s') - sweeps[0]['trial_own_s']:.3f} s of platform wall, "
            f"{marginal(sweeps, 'driver_cpu_s'):.3f} s of driver CPU, "
            f"{marginal(sweeps, 'tree_cpu_s') - sweeps[0]['trial_own_cpu_s']:.3f} s of platform CPU (driver, Ray, "
            "workers, beyond the trial's own)")  # fmt: skip
    for key in ("validate_s", "validate_cpu_s", "variants_s", "variants_cpu_s", "dry_run_s", "dry_run_cpu_s",
                "variants_rss_mb", "searcher_mb"):
        log(trend(figures["variants"], key))
    for key in ("dashboard_s", "export_s"):
        log(trend(figures["dashboard"], key, size="runs"))


def targets_of(figures: dict) -> list:
    from benchmarks.common import Target

    sweeps, variants, stop = figures["sweeps"], figures["variants"], figures["interrupt"]
    targets = []
    if sweeps:
        last, first = sweeps[-1], sweeps[0]
        def ratio(key):
            return last[key] / first[key] if first[key] > 0 else None

        cpu_note = f"CPU of the driver, Ray and the workers beyond a trial's own {last['trial_own_cpu_s']:.2f} s"
        targets += [
            Target(f"platform s per trial, {last['trials']:,} trials", last["platform_s_per_trial"], PER_TRIAL_GOAL_S,
                   " s", False, f"beyond a trial's own {last['trial_own_s']:.2f} s"),
            Target(f"per-trial cost {last['trials']:,} vs {first['trials']:,} trials", ratio("platform_s_per_trial"),
                   CONSTANT_GOAL, "x", False, "wall; 1x: constant per trial"),
            Target(f"platform CPU s per trial, {last['trials']:,} trials", last["platform_cpu_s_per_trial"], None, " s",
                   False, cpu_note),
            Target(f"per-trial CPU {last['trials']:,} vs {first['trials']:,} trials", ratio("platform_cpu_s_per_trial"),
                   CONSTANT_GOAL, "x", False, "1x: constant per trial"),
            Target(f"first trial from Ray's start, {last['trials']:,} trials", last["first_trial_s"], FIRST_TRIAL_GOAL_S,
                   " s", False),
        ]  # fmt: skip
        if last.get("late_s_per_trial") and last.get("early_s_per_trial"):
            targets.append(Target(f"late vs early trials within the {last['trials']:,}-trial sweep",
                                  last["late_s_per_trial"] / last["early_s_per_trial"], CONSTANT_GOAL, "x", False,
                                  "median gap between trial starts, last tenth vs first tenth"))  # fmt: skip
        for key in ("platform_s_per_trial", "platform_cpu_s_per_trial", "driver_peak_rss_mb", "beyond_startup_s"):
            targets.append(Target(f"{key} growth per 10x trials", per_10x(sweeps, key), LINEAR, "x", False, "10x: linear"))
    if stop:
        n = f"{stop['trials']:,} trials"
        note = f"exit code {stop['exit_code']}, parent {stop['parent_status']}, {stop['running_after']} trial run(s) RUNNING after"
        targets += [
            Target(f"first trial from Ray's start, {n}", stop["first_trial_s"], FIRST_TRIAL_GOAL_S, " s", False),
            Target(f"driver peak RSS, {n}", stop["driver_peak_rss_mb"], RSS_GOAL_MB, " MB", False),
            Target(f"Ctrl-C to exit, {n}", stop["interrupt_to_exit_s"], INTERRUPT_GOAL_S, " s", False, note),
        ]
    if variants:
        last = variants[-1]
        targets += [
            Target(f"variant generation, {last['trials']:,} trials", last["variants_s"], None, " s", False,
                   "validation + the searcher's configs, no Ray"),
            Target(f"--dry-run, {last['trials']:,} trials", last["dry_run_s"], None, " s", False),
            Target("variant generation growth per 10x trials", per_10x(variants, "variants_s"), LINEAR, "x", False),
        ]  # fmt: skip
    for key in ("dashboard_s", "export_s"):
        targets.append(Target(f"{key} growth per 10x runs", per_10x(figures["dashboard"], key, "runs"), LINEAR, "x", False))
    return targets


def run(settings):
    """The section for `python -m benchmarks` (benchmarks.common.SectionResult)."""
    from benchmarks.common import SectionResult

    quick = settings.quick
    figures = measure(QUICK_SWEEPS if quick else SWEEPS, QUICK_VARIANTS if quick else VARIANTS,
                      QUICK_DASHBOARD if quick else DASHBOARD, QUICK_INTERRUPT if quick else INTERRUPT,
                      QUICK_LOOP_TRIALS if quick else LOOP_TRIALS)  # fmt: skip
    print_trends(figures)
    rows = [*figures["sweeps"], *([figures["interrupt"]] if figures["interrupt"] else [])]
    rows += [{"kind": "variant generation", **r} for r in figures["variants"]]
    rows += [{"kind": "dashboard + export", "trials": r["runs"], **r} for r in figures["dashboard"]]
    columns = ("kind", "trials", "load_avg_1m", "first_trial_s", "driver_peak_rss_mb", "platform_s_per_trial",
               "platform_cpu_s_per_trial", "driver_cpu_s_per_trial", "driver_rss_kb_per_trial",
               "trial_own_s", "early_s_per_trial", "late_s_per_trial", "beyond_startup_s", "end_s", "after_tune_s", "interrupt_to_exit_s", "exit_code", "running_after",
               "validate_s", "validate_cpu_s", "variants_s", "dry_run_s", "dry_run_cpu_s", "variants_rss_mb", "dashboard_s",
               "export_s")  # fmt: skip
    notes = [
        "Trivial trials: the tiny backbone on 2 classes of generated images, 1 epoch of 1 step, no final measurement; "
        "one at a time (resources.cpus = 2 on 2 CPUs). first_trial_s: from Ray's start to the first child run in MLflow.",
        "platform_s_per_trial: (sweep wall - fixed start-up - trials x trial_own_s) / trials; trial_own_s is the median "
        "of a plain loop of trials.run_trial over the same trials (after the first, which pays the imports).",
        "end_s: from the last trial's end to the driver's exit (Tune's own end, which reads every trial's results "
        "back, the summary, closing runs in MLflow, Ray's shutdown); after_tune_s: the part after Tune returns.",
    ]
    if quick:
        notes.append("quick mode: tiny sizes, the figures prove the code runs and mean nothing")
    return SectionResult("scale", rows, targets_of(figures), columns, notes)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--variants-of"]:
        variants_main(argv[1])
        return 0
    if argv[:1] == ["--loop"]:
        loop_main(argv[1], int(argv[2]))
        return 0
    p = argparse.ArgumentParser(prog="python -m benchmarks.scale", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--sweeps", type=int, nargs="*", default=list(SWEEPS), help="trials of each full sweep")
    p.add_argument("--variants", type=int, nargs="*", default=list(VARIANTS), help="trials of each variant generation")
    p.add_argument("--dashboard", type=int, nargs="*", default=list(DASHBOARD), help="runs of each dashboard + export")
    p.add_argument("--interrupt", type=int, default=INTERRUPT, help="trials of the start + Ctrl-C sweep (0: none)")
    args = p.parse_args(argv)
    figures = measure(args.sweeps, args.variants, args.dashboard, args.interrupt or None)
    print()
    print_trends(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
