"""The platform-overhead benchmark's bookkeeping: which trials it runs and how it reads the sweep's
phase times. The timing itself runs in `python -m benchmarks platform`, never in a test."""

import io
from contextlib import redirect_stdout

import pytest

from benchmarks.sweep_platform import SMOKE_SPEC, fixed_startup_s, parse_phase_times, trial_values
from tokensweep.commands.run import _print_outcome
from tokensweep.spec import load_spec
from tokensweep.tune_runner import SweepOutcome


def test_the_benchmark_runs_eight_distinct_trials_one_at_a_time():
    values = trial_values(threads=2)
    assert len(values) == 8
    assert len({tuple(sorted(v.items())) for v in values}) == 8
    assert {v["threads"] for v in values} == {2}  # the loop gets the threads a sweep trial gets
    assert {v["seed"] for v in values} == {0, 1}
    assert {v["model"] for v in values} == {"vit_tiny_patch", "vit_tiny_conv", "vit_tiny_supertoken"}


def test_phase_times_are_read_back_from_what_tokensweep_run_prints():
    timings = {"validate_s": 1.3, "import_s": 2.5, "ray_start_s": 4.7, "mlflow_setup_s": 1.5, "tune_s": 30.0,
               "ray_shutdown_s": 1.2, "total_s": 41.6}  # fmt: skip
    outcome = SweepOutcome(0, "parent", "/tmp/tune", [("t", "TERMINATED", {"top1": 50.0})], timings, 0)
    out = io.StringIO()
    with redirect_stdout(out):
        _print_outcome(load_spec(SMOKE_SPEC), outcome, "sqlite:///x.db")
    parsed = parse_phase_times(out.getvalue())
    assert parsed == pytest.approx(timings)  # one decimal each: printed exactly
    # interpreter start (wall - total) + the four phases before Tune
    assert fixed_startup_s({**parsed, "wall_s": 43.0}) == pytest.approx(1.4 + 1.3 + 2.5 + 4.7 + 1.5)


def test_a_missing_phase_is_an_error_not_a_zero():
    with pytest.raises(RuntimeError, match="ray start"):
        parse_phase_times("time: 10.0s (validate 1.0s, import 1.0s, mlflow setup 1.0s, tune 5.0s, ray shutdown 1.0s)")
