"""`python -m benchmarks plan [--quick]`: how close `tokensweep plan` comes to the sweeps it plans.

For a few CPU sweeps of different shapes (the smoke grid; its configurations x 2 seeds; the grid on a
real ImageFolder of generated images, with more epochs), each in a fresh folder: `tokensweep plan
--json` (calibration cached per shape, as a user's second plan would be), then `tokensweep run`, then
the parent run's recorded actuals against the plan: actual / planned for the sweep's wall time and
the median trial's device-hours. Goal: 0.8-1.25x. The machine's load average is printed beside each
row, since a shared machine slows the sweep that runs after the calibration.
"""

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SMOKE = str(REPO / "platform" / "sweeps" / "smoke.toml")
GOAL = (0.8, 1.25)
TIMEOUT_S = 900
SHAPES = {  # name -> (--set overrides, on an ImageFolder)
    "grid": ([], False),
    "seeds": (["sweep.seeds=[0,1]"], False),
    "folder": (["trial.epochs=5"], True),
}


def tokensweep(*args, cwd: Path) -> subprocess.CompletedProcess:
    exe = shutil.which("tokensweep") or str(Path(sys.executable).with_name("tokensweep"))
    env = {**os.environ, "RAY_AUTH_MODE": os.environ.get("RAY_AUTH_MODE", "token")}
    return subprocess.run([exe, *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT_S, check=True)


def recorded(db: Path) -> tuple[dict, list[float]]:
    """The parent run's metrics, and each child's device_hours / planned_device_hours."""
    with sqlite3.connect(db) as con:
        rows = con.execute("select r.run_uuid, t.value, m.key, m.value from runs r join tags t on t.run_uuid = r.run_uuid "
                           "and t.key = 'tokensweep.role' join latest_metrics m on m.run_uuid = r.run_uuid").fetchall()  # fmt: skip
    parent, children = {}, {}
    for run, role, key, value in rows:
        (parent if role == "sweep" else children.setdefault(run, {}))[key] = value
    ratios = [c["device_hours"] / c["planned_device_hours"] for c in children.values() if c.get("planned_device_hours")]
    return parent, ratios


def one(name: str, overrides: list[str], folder: bool, work: Path) -> dict:
    work.mkdir()
    sets = [a for o in overrides for a in ("--set", o)]
    if folder:
        tokensweep("data", "tiny", "--out", work / "data", cwd=work)
        sets += ["--set", 'trial.dataset="imagefolder"', "--data-dir", work / "data"]
    plan = json.loads(tokensweep("plan", SMOKE, *sets, "--json", cwd=work).stdout)
    load_before = os.getloadavg()[0]
    tokensweep("run", SMOKE, *sets, "--quiet", cwd=work)
    parent, ratios = recorded(work / "mlflow.db")
    return {"shape": name, "trials": plan["trials"], "planned_wall_s": plan["wall_s"], "wall_s": parent["sweep_wall_s"],
            "wall_ratio": parent["wall_ratio"], "median_trial_ratio": statistics.median(ratios),
            "device_hours_ratio": parent["device_hours_ratio"], "load": f"{load_before:.1f}/{os.getloadavg()[0]:.1f}"}  # fmt: skip


def verdict(ratio: float) -> str:
    return "ok" if GOAL[0] <= ratio <= GOAL[1] else "MISSED"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks plan", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--quick", action="store_true", help="the smoke grid alone")
    args = p.parse_args(argv)
    shapes = {"grid": SHAPES["grid"]} if args.quick else SHAPES
    print(f"plan vs actual on {os.cpu_count()} CPU(s); goal {GOAL[0]}-{GOAL[1]}x; load = 1-min load average before/after the sweep")
    print(f"{'shape':<8} {'trials':>6} {'planned wall':>12} {'wall':>8} {'wall a/p':>9} {'median trial a/p':>17} {'device-h a/p':>13}  load")
    with tempfile.TemporaryDirectory(prefix="bench-plan-") as tmp:
        for name, (overrides, folder) in shapes.items():
            r = one(name, overrides, folder, Path(tmp) / name)
            print(f"{r['shape']:<8} {r['trials']:>6} {r['planned_wall_s']:>11.0f}s {r['wall_s']:>7.0f}s "
                  f"{r['wall_ratio']:>6.2f} {verdict(r['wall_ratio']):<2} {r['median_trial_ratio']:>13.2f} "
                  f"{verdict(r['median_trial_ratio']):<3} {r['device_hours_ratio']:>9.2f}     {r['load']}", flush=True)  # fmt: skip
    return 0
