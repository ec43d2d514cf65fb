"""What each configuration cost, as the report, the dashboard's page and files, and the export's
configurations file give it: its trials' device-hours summed over its seeds, named by vocab's label."""

import json

import pyarrow as pa
import pytest
from test_dashboard_verdicts import CONV, SUPERTOKEN, runs_table

import vocab
from dashboards.build import build_dashboard
from dashboards.configurations import configurations_table
from dashboards.report import build_report, render
from dashboards.tables import configurations_table as page_configurations

# per seed (three each): conv 0.5 + 0.25 + 0.125 h, st 1 + 2 + 4 h; the plan said 0.3 h a trial
HOURS = [0.5, 0.25, 0.125, 1.0, 2.0, 4.0]
CONV_H, ST_H = 0.875, 7.0


def costed(table: pa.Table) -> pa.Table:
    for name, values in (("device_hours", HOURS), ("planned_device_hours", [0.3] * len(HOURS))):
        i = table.schema.get_field_index(name)
        table = table.set_column(i, table.schema.field(i), pa.array(values, pa.float64()))
    return table


def test_the_report_sums_each_configurations_device_hours_under_vocabs_label():
    report = build_report(costed(runs_table(CONV, SUPERTOKEN)), "case")
    assert [c.total("device_hours") for c in report.configs] == [CONV_H, ST_H]
    text = render(report, "md")
    header = next(line for line in text.splitlines() if line.startswith("| configuration"))
    assert header.split(" | ")[-1] == vocab.field("device_hours").label + " |"
    rows = {line.split(" | ")[0][2:]: line.split(" | ")[-1] for line in text.splitlines() if line.startswith(("| conv |", "| st |"))}
    assert rows == {"conv": "0.875 |", "st": "7 |"}
    assert "0.875" in render(report, "latex") and r"\begin{longtable}{lrllrrrr}" in render(report, "latex")


def test_a_sweep_without_costs_reports_none():
    report = build_report(runs_table(CONV, SUPERTOKEN), "case")
    assert [c.total("device_hours") for c in report.configs] == [None, None]
    rows = [line for line in render(report, "md").splitlines() if line.startswith(("| conv |", "| st |"))]
    assert len(rows) == 2 and all(row.endswith(" | – |") for row in rows)


def test_the_dashboard_gives_each_configurations_device_hours(tmp_path):
    table = costed(runs_table(CONV, SUPERTOKEN))
    files = build_dashboard(table, tmp_path, experiment="case")
    configs = {c["name"]: c["device_hours"] for c in json.loads(files["pareto.json"].read_text())["configurations"]}
    assert configs == {"conv": CONV_H, "st": ST_H}

    from dashboards.analysis import analyse
    from dashboards.build import DEFAULT_X, DEFAULT_Y

    page = page_configurations(analyse(table, DEFAULT_X, DEFAULT_Y, experiment="case"))
    column = [c["name"] for c in page["columns"]].index("device_hours")
    assert {r["cells"][1]: r["cells"][column][1] for r in page["rows"]} == {"conv": CONV_H, "st": ST_H}
    assert "device_hours" in files["pareto.html"].read_text()


def test_the_configurations_file_sums_cost_beside_the_means():
    configs = configurations_table(costed(runs_table(CONV, SUPERTOKEN))).to_pylist()
    assert [(c["name"], c["device_hours_sum"]) for c in configs] == [("conv", CONV_H), ("st", ST_H)]
    assert [c["planned_device_hours_sum"] for c in configs] == pytest.approx([0.9, 0.9])
    assert configs[0]["device_hours_mean"] == pytest.approx(CONV_H / 3)  # the mean per seed stays beside it
