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
from vocab.atomic import atomic_path, write_text_atomic
from dashboards.build import OUTPUT_FILES, build_dashboard
from dashboards import compare as compare_module
from dashboards.compare import compare
from dashboards.demo import DEMO_SCHEMA, demo_runs
from dashboards.errors import InputError
from dashboards.runs import RUNS_SCHEMA, Objective, load_runs

X, Y = Objective("images_per_sec"), Objective("top1")
T0 = datetime(2025, 1, 1, tzinfo=timezone.utc)


def table(*rows: dict) -> pa.Table:
    full = []
    for i, row in enumerate(rows):
        full.append({"run_id": f"r{i}", "run_name": f"run-{i}", "status": "FINISHED", "embedding": "patch",
                     "start_time": T0 + timedelta(minutes=i), **row})
    return pa.Table.from_pylist(full, schema=DEMO_SCHEMA)  # the export's columns with the super-token knobs


def page_data(html: str) -> dict:
    """The tables' JSON the page's script renders (dashboards.tables)."""
    text = re.search(r'<script type="application/json" id="page-data">(.*?)</script>', html, re.S)[1]
    return json.loads(text)


def sorted_run_ids(runs: pa.Table) -> list[str]:
    rows = runs.to_pylist()
    return [r["run_id"] for r in sorted(rows, key=lambda r: (r["start_time"] is None, r["start_time"], r["run_id"]))]


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
    data = page_data(html)
    assert [r["key"] for r in data["runs"]["rows"]] == sorted_run_ids(runs)  # every run listed, in start order
    assert {r["state"] for r in data["runs"]["rows"]} == {"front", "noise", "dominated", "failed", "running", "missing"}
    assert len(data["configs"]["rows"]) == 10  # the replicated configurations (the single-seed one is its run)
    for run_id in runs.column("run_id").to_pylist():
        assert html.count(run_id) == 1, run_id  # a run's details are in the page once
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


def optuna_runs(source: str, **extra) -> pa.Table:
    """Two trials whose in-trial, bench and search figures rank them three different ways."""
    rows = [dict(top1=60.0, images_per_sec=100.0, bench_images_per_sec=500.0, search_images_per_sec=300.0),
            dict(top1=50.0, images_per_sec=200.0, bench_images_per_sec=400.0, search_images_per_sec=250.0)]  # fmt: skip
    return table(*({**r, "sweep_search": "optuna", "throughput_source": source, **extra} for r in rows))


def test_an_optuna_sweep_plots_the_throughput_optuna_was_told(tmp_path):
    analysis = analyse(optuna_runs("search_images_per_sec"), X, Y)
    assert analysis.x_figure == "search_images_per_sec"  # not the bench stage's later figure
    assert [p.run["run_id"] for p in analysis.front] == ["r0"]  # r1 is slower alone and less accurate
    front = json.loads(build_dashboard(optuna_runs("search_images_per_sec"), tmp_path)["pareto.json"].read_text())
    assert front["x_figure"] == "search_images_per_sec" and [p["x"] for p in front["front"]] == [300.0]


def test_where_the_search_shared_a_gpu_the_dashboard_plots_that_figure_and_says_so():
    analysis = analyse(optuna_runs("images_per_sec", gpu_shared=True), X, Y)
    assert analysis.x_figure == "images_per_sec" and len(analysis.front) == 2
    assert "shared GPU" in analysis.measured_on()


@pytest.mark.parametrize(
    "x, y, message",
    [
        (Objective("speed"), Y, "unknown objective metric 'speed'; available metrics: train_loss, val_loss, top1, top5"),
        (X, Objective("seed"), "unknown objective metric 'seed'"),  # a parameter is not a metric
        (X, Objective("cluster_iters"), "unknown objective metric 'cluster_iters'"),  # nor a knob (kind=param)
        (X, Objective("threads"), "unknown objective metric 'threads'"),  # nor a tag
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


TINY = dict(model="vit_tiny_supertoken", embedding="supertoken", conv_depth=6, extra_conv=False,
            channels="8,16,16,32,32,32", mask_border=False)  # every knob logged, as the platform does


def test_paper_tables_match_any_backbone_and_show_intervals():
    runs = table(
        dict(model="vit_s_supertoken", embedding="supertoken", conv_depth=6, extra_conv=False, cluster_iters=1,
             config_id="s1", top1=80.0, images_per_sec=900.0),
        dict(model="vit_s_supertoken", embedding="supertoken", cluster_iters=1, config_id="s1", seed=1, top1=82.0,
             images_per_sec=1100.0),  # nulls: model defaults
        dict(model="vit_s_supertoken", embedding="supertoken", cluster_iters=1, channels="8,8,8,8,8,8", top1=10.0),
        dict(model="vit_s_supertoken", embedding="supertoken", cluster_iters=2, top1=70.0, status="FAILED"),
        dict(TINY, cluster_iters=3, config_id="t3", top1=50.0, images_per_sec=3000.0),
        dict(TINY, cluster_iters=3, config_id="t3", seed=1, top1=52.0, images_per_sec=3000.0),
        dict(TINY, cluster_iters=1, config_id="t1", top1=48.0, images_per_sec=3300.0),
    ).to_pylist()
    table8 = compare(paper.TABLE_8, runs)
    assert table8.headers[:4] == ["configuration", "backbone", "top-1 (paper)", "top-1 (this sweep)"]
    rows = {(r[0], r[1]): r for r in table8.rows}
    # t(0.975, 1 df) = 12.706: mean 81 ± 12.706 * sd(80, 82) / sqrt(2) = ± 12.71; the 8-8-8 widths do not match
    assert rows["1 iteration", "s"][2:6] == ["82.96", "81.00 ± 12.71 (n=2)", "766", "1,000 ± 1,271 (n=2)"]
    assert rows["1 iteration", "s"][6].startswith("2 runs, vit_s_supertoken")
    assert rows["1 iteration", "tiny"][3] == "48.00 (n=1, single seed: no interval)"  # tiny widths: half of Table 5's
    assert rows["3 iterations", "tiny"][3] == "51.00 ± 12.71 (n=2)"
    assert rows["2 iterations", "–"][3] == "–" and rows["2 iterations", "–"][6] == "no matching run"  # failed only
    differences = [r for r, kind in zip(table8.rows, table8.kinds) if kind == "difference"]
    assert [(r[0], r[1]) for r in differences] == [("1 − 3 iterations", "tiny")]  # the only backbone with both rows
    assert differences[0][2:4] == ["−0.56", "−3.00 (n=1 vs 2: no interval of the difference)"]


def conv_and_supertoken(conv: list[float], supertoken: list[float]) -> list[dict]:
    rows = [dict(model="vit_tiny_conv", embedding="conv", config_id="c", seed=i, top1=v) for i, v in enumerate(conv)]
    return rows + [dict(TINY, cluster_iters=3, config_id="st", seed=i, top1=v) for i, v in enumerate(supertoken)]


def test_a_difference_whose_interval_includes_zero_is_not_resolved():
    close = compare(paper.TABLE_6, table(*conv_and_supertoken([40.0, 44.0, 42.0], [43.0, 41.0, 45.0])).to_pylist())
    far = compare(paper.TABLE_6, table(*conv_and_supertoken([40.0, 40.5, 41.0], [50.0, 50.5, 51.0])).to_pylist())
    diff = lambda t: next(r for r in t.rows if r[0] == "super-token − conv")  # noqa: E731
    # Welch: both sds 2 (close) or 0.5 (far), n 3 + 3: 4 degrees of freedom, t 2.776, se sqrt(2 sd^2 / 3)
    assert diff(close)[5] == "+1.00 [−3.53, +5.53], not resolved"
    assert diff(far)[5] == "+10.00 [+8.87, +11.13], resolved"
    assert diff(far)[4] == "+2.38"  # the paper's 83.52 - 81.14
    assert diff(far)[2:4] == ["−3.00M", "–"]  # the paper's params; these runs logged none


def test_the_page_says_how_many_seeds_would_resolve_the_papers_claim():
    runs = table(*conv_and_supertoken([40.0, 44.0, 42.0], [43.0, 41.0, 45.0])).to_pylist()
    note = compare_module.seeds_note(runs)
    # s = 2 (pooled over the two replicated configurations): 2 * (1.96 * 2 / 2.38)^2 = 5.4 -> 6;
    # with 80% power 2 * ((1.96 + 0.84) * 2 / 2.38)^2 = 11.1 -> 12
    assert "about 6 seeds per configuration" in note and "about 12 for an 80% chance" in note
    assert "s = 2.00" in note and "Normal approximation" in note
    single = compare_module.seeds_note(table(dict(embedding="patch", top1=1.0)).to_pylist())
    assert "seed spread is unknown" in single


def test_a_sweep_without_runs_yet_still_gets_its_files(tmp_path):
    paths = build_dashboard(RUNS_SCHEMA.empty_table(), tmp_path, experiment="just-started")
    assert json.loads(paths["pareto.json"].read_text())["front"] == []
    assert "(no runs yet)" in paths["pareto.html"].read_text()
