"""The scale benchmark (`python -m benchmarks scale`): its bookkeeping, and its trends across sizes on figures
shaped as its own (its --quick run end to end, with one sweep: tests/e2e/benchmarks/test_scale_benchmark_quick.py).
Its figures are printed, never asserted: the quick sizes only prove the code paths run."""

import math

import pytest

from benchmarks import scale


def test_its_spec_is_a_grid_of_n_trivial_trials(tmp_path):
    from tokensweep.spec import load_spec

    spec = load_spec(str(scale.write_spec(tmp_path / "s.toml", 25)), [])
    assert len(spec.variants) == 25 and [v.config.seed for v in spec.variants] == list(range(25))
    config = spec.variants[0].config
    assert (config.epochs, config.max_steps_per_epoch, config.measure, config.model) == (1, 1, False, "vit_tiny_patch")
    assert spec.cpus == 2  # one trial at a time on the benchmark's 2 CPUs
    assert "max_trials = 100000" in scale.spec_text(100_000)  # the 100,000-trial grid is allowed


def test_growth_is_per_10x_between_the_smallest_and_largest_size():
    rows = [{"trials": 100, "t": 2.0}, {"trials": 1_000, "t": 20.0}, {"trials": 10_000, "t": 200.0}]
    assert scale.per_10x(rows, "t") == pytest.approx(10.0)  # linear
    rows = [{"trials": 100, "t": 3.0}, {"trials": 10_000, "t": 3.0}]
    assert scale.per_10x(rows, "t") == pytest.approx(1.0)  # constant
    rows = [{"trials": 10, "t": 1.0}, {"trials": 1_000, "t": 10_000.0}]
    assert scale.per_10x(rows, "t") == pytest.approx(100.0)  # quadratic: 10x per 10x, squared
    assert scale.per_10x([{"trials": 10, "t": 1.0}, {"trials": 100}], "t") is None  # one figure: no trend
    line = scale.trend([{"trials": 100, "t": 2.0}, {"trials": 1_000, "t": 20.0}], "t")
    assert "100: 2" in line and "1,000: 20" in line and "x10.00 per 10x" in line


def _figures(per_trial_small: float, per_trial_large: float) -> dict:
    sweep = dict(trial_own_s=0.1, trial_own_cpu_s=0.2, platform_cpu_s_per_trial=0.1, first_trial_s=8.0, driver_peak_rss_mb=500.0,
                 early_s_per_trial=0.5, late_s_per_trial=0.6)
    return {
        "sweeps": [{**sweep, "trials": 100, "platform_s_per_trial": per_trial_small, "beyond_startup_s": 40.0,
                    "driver_cpu_s": 30.0, "tree_cpu_s": 60.0},
                   {**sweep, "trials": 1_000, "platform_s_per_trial": per_trial_large, "beyond_startup_s": 400.0,
                    "driver_cpu_s": 120.0, "tree_cpu_s": 420.0}],
        "interrupt": dict(trials=10_000, first_trial_s=9.0, driver_peak_rss_mb=700.0, interrupt_to_exit_s=4.0,
                          exit_code=130, parent_status="KILLED", running_after=0),
        "variants": [{"trials": 10_000, "variants_s": 1.0, "dry_run_s": 1.5},
                     {"trials": 100_000, "variants_s": 10.0, "dry_run_s": 12.0}],
        "dashboard": [{"runs": 100, "dashboard_s": 0.5, "export_s": 0.1}, {"runs": 1_000, "dashboard_s": 1.0, "export_s": 1.0}],
    }  # fmt: skip


def test_targets_hold_the_per_trial_cost_against_its_goals():
    targets = {t.name: t for t in scale.targets_of(_figures(0.2, 0.25))}
    assert targets["platform s per trial, 1,000 trials"].met
    constant = targets["per-trial cost 1,000 vs 100 trials"]
    assert constant.value == pytest.approx(1.25) and constant.met
    assert targets["Ctrl-C to exit, 10,000 trials"].met and "exit code 130" in targets["Ctrl-C to exit, 10,000 trials"].note
    assert targets["variant generation growth per 10x trials"].value == pytest.approx(10.0)
    assert targets["late vs early trials within the 1,000-trial sweep"].value == pytest.approx(1.2)
    assert targets["platform_s_per_trial growth per 10x trials"].value == pytest.approx(1.25)
    grown = {t.name: t for t in scale.targets_of(_figures(0.2, 0.6))}
    assert grown["per-trial cost 1,000 vs 100 trials"].met is False  # 3x: the cost grew with the sweep
    assert grown["platform s per trial, 1,000 trials"].met is False
    assert all(not math.isnan(t.value) for t in grown.values() if t.value is not None)


def test_pace_compares_the_gaps_between_trial_starts_early_and_late():
    steady = [0.5 * i for i in range(40)]
    assert scale.pace(steady) == {"early_s_per_trial": 0.5, "late_s_per_trial": 0.5}
    slowing = [0.01 * i * i for i in range(40)]  # each gap longer than the last: a cost that grows
    paced = scale.pace(slowing)
    assert paced["late_s_per_trial"] > 5 * paced["early_s_per_trial"]
    assert scale.pace([0.0, 1.0, 2.0]) == {}  # too few trials to tell


def test_the_trends_print_each_figure_per_10x_and_the_cost_per_added_trial():
    lines = []
    scale.print_trends(_figures(0.2, 0.25), log=lines.append)
    out = "\n".join(lines)
    per_trial = next(line for line in lines if line.strip().startswith("platform_s_per_trial"))
    assert "100: 0.2" in per_trial and "1,000: 0.25" in per_trial and "x1.25 per 10x" in per_trial
    # (400 - 40) / 900 - 0.1 of wall; (120 - 30) / 900 of driver CPU; (420 - 60) / 900 - 0.2 of the whole tree's
    assert "per added trial, 100 -> 1,000: 0.300 s of platform wall, 0.100 s of driver CPU, 0.200 s of platform CPU" in out
    assert "x1.00 per 10x" in next(line for line in lines if line.strip().startswith("early_s_per_trial"))
    assert "x10.00 per 10x" in next(line for line in lines if line.strip().startswith("variants_s"))
    assert "dashboard_s" in out and "export_s" in out
