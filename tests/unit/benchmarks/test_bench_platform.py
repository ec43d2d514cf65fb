"""The platform-overhead benchmark's bookkeeping: which trials it runs and how it reads the sweep's
phase times. The timing itself runs in `python -m benchmarks platform`, never in a test."""

import pytest

from benchmarks.sweep_platform import PHASES, phase_times, trial_values


def test_the_benchmark_runs_eight_distinct_trials_one_at_a_time():
    values = trial_values(threads=2)
    assert len(values) == 8
    assert len({tuple(sorted(v.items())) for v in values}) == 8
    assert {v["threads"] for v in values} == {2}  # the loop gets the threads a sweep trial gets
    assert {v["seed"] for v in values} == {0, 1}
    assert {v["model"] for v in values} == {"vit_tiny_patch", "vit_tiny_conv", "vit_tiny_supertoken"}


def _sweep_run(uri: str, tags: dict) -> None:
    from tokensweep.tracking.tracker import SweepTracker

    tracker = SweepTracker(uri, "smoke")
    tracker.start_parent(tune_path="/r/smoke", command="c", tags=tags, spec_text="", spec_name="s.toml", resolved={})


def test_phase_times_are_read_from_the_parent_run(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    times = {"validate_s": 0.1, "import_s": 2.5, "ray_start_s": 4.7, "mlflow_setup_s": 1.5, "tune_s": 30.0}
    _sweep_run(uri, {**{f"tokensweep.time.{k}": f"{v:.1f}" for k, v in times.items()},
                     "tokensweep.tune_started_at": "1700000000.250"})  # fmt: skip
    phases, started = phase_times(uri, "smoke")
    assert phases == pytest.approx(times) and started == 1700000000.25
    assert set(phases) <= set(PHASES)


def test_a_missing_phase_is_an_error_not_a_zero(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    _sweep_run(uri, {"tokensweep.time.validate_s": "0.1", "tokensweep.tune_started_at": "1.0"})
    with pytest.raises(RuntimeError, match="import_s"):
        phase_times(uri, "smoke")
