"""The scale benchmark (`python -m benchmarks scale`): its --quick run end to end (its bookkeeping, and the
trends across sizes on figures of the same shape: tests/unit/benchmarks/test_scale_benchmark.py).
Its figures are printed, never asserted: the quick sizes only prove the code paths run. What is asserted is
how its Ctrl-C of a 2,000-trial grid ends (what must not grow with the number of trials:
tests/unit/platform/test_sweep_scale.py)."""

from benchmarks import scale


def test_the_quick_run_measures_every_part_and_ctrl_c_ends_a_big_grid_cleanly(capsys):
    import torch

    from benchmarks.common import Settings

    result = scale.run(Settings(torch.device("cpu"), threads=2, quick=True))
    kinds = [r["kind"] for r in result.rows]
    assert kinds.count("sweep") == len(scale.QUICK_SWEEPS) and kinds.count("start + Ctrl-C") == 1
    for row in (r for r in result.rows if r["kind"] == "sweep"):
        assert row["first_trial_s"] > 0 and row["driver_peak_rss_mb"] > 50 and row["wall_s"] > row["fixed_startup_s"] > 0
    assert [r["trials"] for r in result.rows if r["kind"] == "variant generation"] == list(scale.QUICK_VARIANTS)
    assert [r["trials"] for r in result.rows if r["kind"] == "dashboard + export"] == list(scale.QUICK_DASHBOARD)
    names = [t.name for t in result.targets]
    assert f"platform s per trial, {scale.QUICK_SWEEPS[-1]} trials" in names
    assert any(n.startswith("Ctrl-C to exit") for n in names)
    out = capsys.readouterr().out
    assert "platform_s_per_trial" in out and "trial's own time (plain loop)" in out

    # SIGINT a few seconds into the 2,000-trial grid: the driver ended (within 120 s, or interrupt_sweep
    # raises), every run it made is closed, nothing is left RUNNING
    stop = next(r for r in result.rows if r["kind"] == "start + Ctrl-C")
    assert stop["trials"] == scale.QUICK_INTERRUPT == 2_000 and stop["interrupt_to_exit_s"] is not None
    # 130 once SIGINT is handled as an interruption throughout; Tune's own handler stops the experiment
    # gracefully and returns, and the sweep then ends as KILLED with exit code 1
    assert stop["exit_code"] in (1, 130), stop
    assert stop["sweep_statuses"] == {"KILLED": 1}, stop
    assert 1 <= stop["trial_runs"] < 2_000 and set(stop["trial_statuses"]) <= {"FINISHED", "KILLED"}, stop
