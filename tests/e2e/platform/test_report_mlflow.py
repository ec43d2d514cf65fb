"""`tokensweep report` and `tokensweep dashboard` on a real MLflow store with a real bench: the
images/sec differences come from the bench's repeats (read from the bench's table on the parent
run), paired, and both commands give the same verdicts."""

import csv
import io
import json

import pytest

from helpers import SWEEPS
from tokensweep.cli import main

SETTINGS = {"device": "cpu", "batch": 2, "repeats": 7, "steps": 3, "threads": 1}


@pytest.fixture(scope="module")
def benched_sweep(tmp_path_factory):
    """The smoke spec with seeds 0 and 1 as finished child runs (top-1 made up), then benched for real."""
    from tokensweep.spec import load_spec
    from tokensweep.sweep import bench
    from tokensweep.sweep.bench import bench_sweep, plan
    from tokensweep.tracking import tags as T
    from tokensweep.tracking.tracker import SweepTracker

    root = tmp_path_factory.mktemp("report")
    spec = load_spec(SWEEPS / "smoke.toml", ["sweep.seeds=[0, 1]"])
    tracker = SweepTracker(f"sqlite:///{root / 'mlflow.db'}", "smoke")
    tracker.start_parent(tune_path=str(root / "t"), command="test", tags={}, spec_text="", spec_name="smoke.toml", resolved={})
    configs = {f"trial_{i}": v.config for i, v in enumerate(spec.variants)}
    for i, (trial_id, config) in enumerate(configs.items()):
        run_id = tracker.start_child(trial_id, trial_id, config.params(), {T.CONFIG_ID: config.config_id()})
        tracker.log_result(run_id, {"top1": 40.0 + 3 * (i // 2) + config.seed}, 1)
        tracker.end_child(run_id, "FINISHED")
    runs = bench.child_runs(tracker)
    archs, runs_by_arch = plan(configs, runs)
    bench.write_architectures(tracker, archs, runs_by_arch, runs)
    tracker.end_parent("FINISHED")
    table = bench_sweep(tracker, SETTINGS)
    return tracker.tracking_uri, table, root


def test_report_pairs_the_bench_repeats_and_the_dashboard_agrees(benched_sweep, tmp_path, capsys):
    scipy_stats = pytest.importorskip("scipy.stats")
    uri, bench, _ = benched_sweep
    assert main(["report", "smoke", "--tracking-uri", uri, "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    speed = [r for r in rows if r["metric"] == "images_per_sec"]
    assert len(speed) == 6 and len([r for r in rows if r["metric"] == "top1"]) == 6  # 4 configurations: every pair
    assert {r["method"] for r in speed} == {"paired t over the bench's repeats"}
    # the first pair against scipy's paired t test on the bench table's own repeats
    repeats = [r["repeat_images_per_sec"] for r in bench["rows"]]
    expected = scipy_stats.ttest_rel(repeats[0], repeats[1]).confidence_interval(0.95)
    intervals = {(float(r["ci_low"]), float(r["ci_high"])) for r in speed}
    assert any(low == pytest.approx(expected.low) and high == pytest.approx(expected.high) for low, high in intervals)

    out = tmp_path / "dash"
    assert main(["dashboard", "smoke", "--tracking-uri", uri, "--out", str(out), "--no-log"]) == 0
    differences = json.loads((out / "pareto.json").read_text())["differences"]
    verdict = lambda r: "" if r is None else str(r).lower()  # noqa: E731
    assert {(d["metric"], d["a"], d["b"]): verdict(d["resolved"]) for d in differences} == {
        (r["metric"], r["a"], r["b"]): r["resolved"] for r in rows}


def test_report_to_a_file_in_every_format(benched_sweep, capsys):
    uri, _, root = benched_sweep
    for fmt, first in (("md", "# smoke"), ("latex", r"\documentclass"), ("csv", "metric,a,b,difference")):
        out = root / f"report.{fmt}"
        assert main(["report", "smoke", "--tracking-uri", uri, "--format", fmt, "--out", str(out),
                     "--baseline", "patch"]) == 0  # fmt: skip
        assert out.read_text().startswith(first)
    assert "wrote 4 configurations and 6 differences" in capsys.readouterr().out  # 3 against the baseline, 2 metrics
