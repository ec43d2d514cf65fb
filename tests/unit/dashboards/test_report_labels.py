"""`tokensweep report` calls each metric what the dashboard's axes call it: vocab's label of the
figure reported (the bench's throughput, or the in-trial one when a configuration has no bench)."""

import pyarrow as pa
import pytest
from test_dashboard_verdicts import CONV, SUPERTOKEN, runs_table

import vocab
from dashboards.build import build_dashboard
from dashboards.report import build_report, render

BENCH_COLUMNS = ("bench_images_per_sec", "bench_images_per_sec_ci_low", "bench_images_per_sec_ci_high", vocab.BENCH_REPEATS)


def without_bench(table: pa.Table) -> pa.Table:
    for name in BENCH_COLUMNS:
        i = table.schema.get_field_index(name)
        table = table.set_column(i, table.schema.field(i), pa.nulls(table.num_rows, table.schema.field(i).type))
    return table


@pytest.mark.parametrize("benched, figure", [(True, "bench_images_per_sec"), (False, "images_per_sec")])
def test_the_report_names_throughput_as_the_dashboard_axis_does(benched, figure, tmp_path):
    table = runs_table(CONV, SUPERTOKEN) if benched else without_bench(runs_table(CONV, SUPERTOKEN))
    words = vocab.field(figure).label
    axis = build_dashboard(table, tmp_path, experiment="case")["pareto.svg"].read_text()
    assert words in axis
    report = render(build_report(table, "case"), "md")
    header = next(line for line in report.splitlines() if line.startswith("| configuration"))
    assert header.split(" | ")[2:4] == [vocab.field("top1").label, words]
    assert f"| {words} | conv − st |" in report  # its difference's row
