"""The scale benchmark (`python -m benchmarks scale`): its --quick run end to end (its bookkeeping:
tests/unit/benchmarks/test_scale_benchmark.py).
Its figures are printed, never asserted: the quick sizes only prove the code paths run."""



from benchmarks import scale


def test_the_quick_run_measures_every_part(capsys):
    import torch

    from benchmarks.common import Settings

    result = scale.run(Settings(torch.device("cpu"), threads=2, quick=True))
    kinds = [r["kind"] for r in result.rows]
    assert kinds.count("sweep") == len(scale.QUICK_SWEEPS) and "start + Ctrl-C" in kinds
    sweeps = [r for r in result.rows if r["kind"] == "sweep"]
    for row in sweeps:
        assert row["first_trial_s"] > 0 and row["driver_peak_rss_mb"] > 50 and row["wall_s"] > row["fixed_startup_s"] > 0
    stop = next(r for r in result.rows if r["kind"] == "start + Ctrl-C")
    assert stop["interrupt_to_exit_s"] is not None and stop["running_after"] == 0 and stop["parent_status"] == "KILLED"
    assert [r["trials"] for r in result.rows if r["kind"] == "variant generation"] == list(scale.QUICK_VARIANTS)
    assert [r["trials"] for r in result.rows if r["kind"] == "dashboard + export"] == list(scale.QUICK_DASHBOARD)
    names = [t.name for t in result.targets]
    small, large = scale.QUICK_SWEEPS
    assert f"per-trial cost {large} vs {small} trials" in names and any(n.startswith("Ctrl-C to exit") for n in names)
    assert f"late vs early trials within the {large}-trial sweep" in names  # the larger quick sweep has both paces
    out = capsys.readouterr().out
    assert "platform_s_per_trial" in out and "per 10x" in out
