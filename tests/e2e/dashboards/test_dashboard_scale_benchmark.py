"""The scale benchmark's code runs (at a tiny size: its figures are printed, never asserted)."""


from benchmarks import scale_dashboard



def test_the_scale_benchmark_measures_dashboard_and_export(capsys):
    rows = scale_dashboard.measure((30, 90), browser=False)
    assert [r["runs"] for r in rows] == [30, 90]
    for row in rows:  # measure() itself checks every run of the store was exported
        assert row["dashboard_s"] > 0 and row["page_mb"] > 1 and row["export_s"] > 0
    assert scale_dashboard.per_10x(rows, "export_s") > 0
    assert "runs 90" in capsys.readouterr().out
