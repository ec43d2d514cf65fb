"""Runs table -> analysis -> files, without MLflow: states, errors, outputs, paper comparison."""

import json
import math
import re
from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from plotly.offline import get_plotlyjs

from dashboards import paper
from dashboards.analysis import analyse
from dashboards.atomic import atomic_path, write_text_atomic
from dashboards.build import OUTPUT_FILES, build_dashboard
from dashboards.compare import compare
from dashboards.demo import demo_runs
from dashboards.errors import InputError
from dashboards.runs import RUNS_SCHEMA, Objective, load_runs

X, Y = Objective("images_per_sec"), Objective("top1")
T0 = datetime(2025, 1, 1, tzinfo=timezone.utc)


def table(*rows: dict) -> pa.Table:
    full = []
    for i, row in enumerate(rows):
        full.append({"run_id": f"r{i}", "run_name": f"run-{i}", "status": "FINISHED", "embedding": "patch",
                     "start_time": T0 + timedelta(minutes=i), **row})
    return pa.Table.from_pylist(full, schema=RUNS_SCHEMA)


def states(analysis) -> dict:
    return {p.run["run_name"]: (p.state, p.excluded) for p in analysis.points}


def test_failed_running_killed_and_missing_runs_are_listed_but_never_on_the_front():
    runs = table(
        dict(top1=50.0, images_per_sec=100.0),
        dict(top1=40.0, images_per_sec=90.0),  # dominated
        dict(top1=99.0, images_per_sec=999.0, status="FAILED"),  # would dominate everything
        dict(top1=98.0, images_per_sec=998.0, status="RUNNING"),
        dict(top1=97.0, images_per_sec=997.0, status="KILLED"),
        dict(top1=96.0),  # no throughput
        dict(top1=math.nan, images_per_sec=995.0),  # a NaN is as missing as a null
    )
    analysis = analyse(runs, X, Y)
    assert states(analysis) == {
        "run-0": ("front", None),
        "run-1": ("dominated", None),
        "run-2": ("failed", "failed"),
        "run-3": ("running", "running"),
        "run-4": ("killed", "killed"),
        "run-5": ("missing", "missing images_per_sec"),
        "run-6": ("missing", "missing top1"),
    }
    assert [p.run["run_name"] for p in analysis.front] == ["run-0"]


def test_json_lists_the_front_sorted_and_every_excluded_run(tmp_path):
    runs = table(
        dict(top1=60.0, images_per_sec=300.0),
        dict(top1=70.0, images_per_sec=200.0),
        dict(top1=70.0, images_per_sec=200.0),  # exact duplicate: also on the front
        dict(top1=10.0, images_per_sec=10.0),
        dict(status="FAILED"),
        dict(top1=80.0, images_per_sec=50.0, status="RUNNING"),
    )
    paths = build_dashboard(runs, tmp_path, experiment="t")
    assert sorted(paths) == sorted(OUTPUT_FILES) and all(p.stat().st_size > 0 for p in paths.values())
    front = json.loads(paths["pareto.json"].read_text())
    assert [(f["run_name"], f["x"], f["y"]) for f in front["front"]] == [
        ("run-1", 200.0, 70.0), ("run-2", 200.0, 70.0), ("run-0", 300.0, 60.0)
    ]
    assert {e["run_name"]: e["reason"] for e in front["excluded"]} == {"run-4": "failed", "run-5": "running"}
    assert front["x"] == {"metric": "images_per_sec", "direction": "max"} and front["runs"] == 6


def test_outputs_are_deterministic_apart_from_the_generated_time(tmp_path):
    a = build_dashboard(demo_runs(), tmp_path / "a")
    b = build_dashboard(demo_runs(), tmp_path / "b")
    for name in ("pareto.json", "pareto.svg"):
        assert a[name].read_bytes() == b[name].read_bytes(), name
    strip = lambda p: re.sub(r"Generated [^.]*\.", "", p.read_text())  # noqa: E731
    assert strip(a["pareto.html"]) == strip(b["pareto.html"])


def test_page_is_self_contained_and_marks_every_run(tmp_path):
    runs = demo_runs()
    html = build_dashboard(runs, tmp_path)["pareto.html"].read_text()
    assert get_plotlyjs() in html and "Plotly.newPlot" in html  # plotly.js inlined, not fetched
    ours = html.replace(get_plotlyjs(), "")  # (plotly.js holds map-tile URLs it never uses for scatter)
    assert "<script src" not in ours.replace(" ", "")
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", ours)
    assert 'http-equiv="refresh"' not in html
    assert html.count('<tr class="state-') == runs.num_rows
    for state in ("front", "dominated", "failed", "running", "missing"):
        assert f'<tr class="state-{state}"' in html
    assert "NVIDIA H100 80GB HBM3, bf16" in html  # the title names device and precision
    for number in (1, 6, 7, 8):
        assert f"Table {number}:" in html
    assert "CUDA out of memory" in html  # the failure reason is shown


def test_served_page_reloads_itself(tmp_path):
    html = build_dashboard(demo_runs(), tmp_path, refresh_seconds=15)["pareto.html"].read_text()
    assert '<meta http-equiv="refresh" content="15">' in html


def test_minimised_objectives_and_a_parquet_source(tmp_path):
    path = tmp_path / "runs.parquet"
    pq.write_table(table(dict(flops=1e9, top1=50.0), dict(flops=2e9, top1=60.0), dict(flops=3e9, top1=55.0)), path)
    paths = build_dashboard(path, tmp_path / "out", x=Objective("flops", maximize=False))
    front = json.loads(paths["pareto.json"].read_text())["front"]
    assert [f["run_name"] for f in front] == ["run-0", "run-1"]


def test_optuna_sweeps_get_a_hypervolume_chart(tmp_path):
    plain = build_dashboard(demo_runs(), tmp_path / "plain")["pareto.html"].read_text()
    optuna = build_dashboard(demo_runs(optuna=True), tmp_path / "optuna")["pareto.html"].read_text()
    assert 'id="hypervolume-chart"' in optuna and 'id="hypervolume-chart"' not in plain


@pytest.mark.parametrize(
    "x, y, message",
    [
        (Objective("speed"), Y, "unknown objective metric 'speed'; available metrics: top1, top5, params"),
        (X, Objective("seed"), "unknown objective metric 'seed'"),  # a parameter is not a metric
        (Y, Y, "the two objectives must differ"),
    ],
)
def test_bad_objectives_say_what_is_available(x, y, message):
    with pytest.raises(InputError) as err:
        analyse(table(dict(top1=1.0, images_per_sec=1.0)), x, y)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_bad_inputs_are_one_line_errors(tmp_path):
    with pytest.raises(InputError, match="must be 'max' or 'min'"):
        Objective.parse("top1", "up")
    with pytest.raises(InputError, match="does not exist"):
        load_runs(tmp_path / "nope.parquet")
    (tmp_path / "junk.parquet").write_text("not parquet")
    with pytest.raises(InputError, match="not a readable Parquet file"):
        load_runs(tmp_path / "junk.parquet")
    with pytest.raises(InputError, match="lacks column"):
        load_runs(pa.table({"run_id": ["a"]}))
    with pytest.raises(InputError, match="log axis"):
        analyse(table(dict(top1=1.0, images_per_sec=0.0)), X, Y, x_scale="log")


def test_a_failed_write_leaves_the_old_file_and_no_temp_file(tmp_path):
    target = write_text_atomic(tmp_path / "pareto.html", "old page")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half a pa")
            raise RuntimeError("crash mid-write")
    assert target.read_text() == "old page"
    assert [p.name for p in tmp_path.iterdir()] == ["pareto.html"]


def test_paper_tables_sit_beside_matching_runs():
    runs = table(
        dict(embedding="supertoken", conv_depth=6, extra_conv=False, cluster_iters=1, top1=80.0, images_per_sec=900.0),
        dict(embedding="supertoken", cluster_iters=1, top1=82.0, images_per_sec=1100.0),  # nulls: model defaults
        dict(embedding="supertoken", cluster_iters=1, channels="8,8,8,8,8,8", top1=10.0),  # other widths: no match
        dict(embedding="supertoken", cluster_iters=2, top1=70.0, status="FAILED"),  # failed: not a result
    ).to_pylist()
    table8 = compare(paper.TABLE_8, runs)
    assert table8.headers[:3] == ["configuration", "top-1 (paper)", "top-1 (this sweep)"]
    one, two = table8.rows[0], table8.rows[1]
    assert one[1:5] == ["82.96", "81.00", "766", "1,000"] and one[5].startswith("2 runs")
    assert two[2] == "–" and two[5] == "no matching run"


def test_a_sweep_without_runs_yet_still_gets_its_files(tmp_path):
    paths = build_dashboard(RUNS_SCHEMA.empty_table(), tmp_path, experiment="just-started")
    assert json.loads(paths["pareto.json"].read_text())["front"] == []
    assert "(no runs yet)" in paths["pareto.html"].read_text()
