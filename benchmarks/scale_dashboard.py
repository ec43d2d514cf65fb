"""The dashboard at scale: `tokensweep dashboard` and `tokensweep export` at 1,000 and 10,000 runs.

    .venv/bin/python -m benchmarks.scale_dashboard [--sizes 1000 10000] [--no-browser]

or `run(settings)` from `python -m benchmarks` (a SectionResult with the targets). Measured:
  - dashboard: build_dashboard on a generated runs table (three seeds per configuration, the
    super-token knobs, every vocab metric), wall seconds, and the page's size;
  - page load: pareto.html in headless Chromium until the chart is drawn (WebGL points beyond
    dashboards.figure.GL_THRESHOLD), wall seconds;
  - export: tokensweep.tracking.export.runs_table from a real MLflow sqlite store holding the runs.
    The store is written in bulk: one trial run through MlflowClient (so MLflow's own schema and
    values), then cloned with SQL inserts per table with each clone's own values; creating 10,000
    runs one client call at a time would take longer than everything measured here.
Each figure is printed with its ratio per 10x of runs (1.0x per 10x would be constant time, 10x linear).
"""

import argparse
import math
import os
import random
import shutil
import sqlite3
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa

SIZES = (1_000, 10_000)
SEEDS = 3
DASHBOARD_GOAL_S = 10.0
PAGE_LOAD_GOAL_S = 5.0
CHROMIUM = Path("/usr/bin/chromium")
# WebGL without a GPU: Chromium's software rasteriser (SwiftShader) must be allowed explicitly.
LAUNCH_ARGS = ["--no-sandbox", "--no-first-run", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"]  # fmt: skip
EMBEDDINGS = ("patch", "conv", "supertoken")


def run_values(index: int, rng: random.Random) -> dict:
    """One generated trial: its configuration (index // SEEDS), seed, knobs and results."""
    config, seed = divmod(index, SEEDS)
    embedding = EMBEDDINGS[config % 3]
    values = dict(
        model=f"vit_s_{embedding}", embedding=embedding, backbone="s", img_size=224, epochs=300, batch_size=128,
        lr=1e-3 * (1 + config % 7), seed=seed, dataset="imagenet100", config_id=f"c{config:06d}",
        top1=40 + 40 * rng.random(), top5=90 + 5 * rng.random(), params=17_000_000 + config % 1000,
        embed_params=100_000 + config % 500, flops=4.3e9, images_per_sec=500 + 3000 * rng.random(),
        train_images_per_sec=1000.0, train_loss=1.5, val_loss=1.2, device="NVIDIA H100 80GB HBM3", precision="bf16",
        torch_version="2.13.0", gpu_shared=False,
    )  # fmt: skip
    if embedding == "supertoken":
        values.update(conv_depth=config % 7, extra_conv=False, cluster_iters=1 + config % 4,
                      channels="16,32,32,64,64,64", mask_border=False)  # fmt: skip
    return values


def runs_table(n: int, seed: int = 0) -> pa.Table:
    """A generated table of n FINISHED runs in the export's schema."""
    from dashboards.demo import DEMO_SCHEMA

    rng = random.Random(seed)
    start = datetime(2025, 1, 1, tzinfo=timezone.utc)
    rows = []
    for i in range(n):
        row = run_values(i, rng)
        row.update(run_id=f"{i:032x}", run_name=f"trial-{i:05d}", status="FINISHED",
                   start_time=start + timedelta(seconds=i), end_time=start + timedelta(seconds=i + 60))  # fmt: skip
        rows.append(row)
    return pa.Table.from_pylist(rows, schema=DEMO_SCHEMA)


def time_dashboard(table: pa.Table, out: Path) -> tuple[float, float, int]:
    """Wall and CPU seconds of build_dashboard (CPU: what a busy shared machine does not inflate), page bytes."""
    from dashboards.build import build_dashboard

    begin, cpu = time.perf_counter(), time.process_time()
    paths = build_dashboard(table, out, experiment="scale")
    return time.perf_counter() - begin, time.process_time() - cpu, paths["pareto.html"].stat().st_size


def time_page_load(html: Path) -> tuple[float, float] | None:
    """Seconds from navigation to a drawn chart in headless Chromium, best of two, and the same for
    a page holding only plotly.js (the floor any page pays here); None without Chromium."""
    if not CHROMIUM.exists():
        return None
    from playwright.sync_api import sync_playwright
    from plotly.offline import get_plotlyjs

    floor = html.with_name("plotly-only.html")
    floor.write_text(f"<html><head><script>{get_plotlyjs()}</script></head><body><div id='pareto-chart'></div>"
                     "<script>Plotly.newPlot('pareto-chart', [{x: [1], y: [1]}])</script></body></html>")  # fmt: skip
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        try:
            times = {}
            for path in (floor, html, floor, html):  # the first load warms Chromium's caches
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                begin = time.perf_counter()
                page.goto(path.as_uri(), wait_until="load", timeout=120_000)
                page.wait_for_function("() => document.querySelector('#pareto-chart .plot-container') !== null",
                                       timeout=120_000)  # fmt: skip
                times[path] = min(times.get(path, math.inf), time.perf_counter() - begin)
                page.close()
            return times[html], times[floor]
        finally:
            browser.close()


def write_store(root: Path, n: int, experiment: str = "scale") -> str:
    """An MLflow sqlite store with one sweep of n trial runs (see the module docstring); its URI."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param

    from tokensweep.tracking import tags as T
    import vocab
    from vocab.values import as_text

    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp_id = client.create_experiment(experiment, artifact_location=(root / "artifacts").as_uri())
    parent = client.create_run(exp_id, run_name=experiment, tags={T.ROLE: "sweep", T.SEARCH: "grid"}).info.run_id
    rng = random.Random(0)

    def split(values: dict) -> tuple[dict, dict, dict]:
        metrics = {k: float(v) for k, v in values.items() if k in vocab.METRICS and k != "lr"}
        tag_values = {k: as_text(v) for k, v in values.items() if k in vocab.TAGS}
        tag_values.update({T.PARENT: parent, T.ROLE: "trial", T.CONFIG_ID: values["config_id"]})
        params = {k: as_text(v) for k, v in values.items() if k not in metrics and k not in tag_values
                  and k != "config_id"}  # fmt: skip
        return params, tag_values, metrics

    template_values = run_values(0, rng)
    params, tag_values, metrics = split(template_values)
    template = client.create_run(exp_id, run_name="trial-00000", tags={**tag_values, T.TRIAL_ID: "trial_00000"})
    template_id = template.info.run_id
    now = int(time.time() * 1000)
    client.log_batch(template_id, metrics=[Metric(k, v, now, 2) for k, v in metrics.items()],
                     params=[Param(k, v) for k, v in params.items()])  # fmt: skip
    client.set_terminated(template_id, "FINISHED")
    _clone(root / "mlflow.db", template_id, [split(run_values(i, rng)) for i in range(1, n)])
    return uri


def _clone(db: Path, template_id: str, clones: list[tuple[dict, dict, dict]]) -> None:
    """Copy the template run's rows in every table once per clone, with the clone's own values."""
    from tokensweep.tracking import tags as T

    con = sqlite3.connect(db)
    try:
        tables = ("runs", "tags", "params", "metrics", "latest_metrics")
        columns = {t: [c[1] for c in con.execute(f"pragma table_info({t})")] for t in tables}
        template = {t: con.execute(f"select * from {t} where run_uuid = ?", (template_id,)).fetchall() for t in tables}
        start = template["runs"][0][columns["runs"].index("start_time")]
        out: dict[str, list] = {t: [] for t in tables}
        for i, (params, tag_values, metrics) in enumerate(clones, start=1):
            run_id = uuid.uuid4().hex
            values = {"runs": {}, "params": params, "tags": {**tag_values, T.TRIAL_ID: f"trial_{i:05d}"},
                      "metrics": metrics, "latest_metrics": metrics}  # fmt: skip
            for table in tables:
                cols = columns[table]
                for row in template[table]:
                    row = dict(zip(cols, row), run_uuid=run_id)
                    if table == "runs":
                        row.update(name=f"trial-{i:05d}", start_time=start + i, end_time=start + i + 60,
                                   artifact_uri=row["artifact_uri"].replace(template_id, run_id))  # fmt: skip
                    elif row["key"] == "mlflow.runName":
                        row["value"] = f"trial-{i:05d}"
                    elif row["key"] in values[table]:
                        row["value"] = values[table][row["key"]]
                    out[table].append(tuple(row[c] for c in cols))
        for table in tables:
            marks = ",".join("?" * len(columns[table]))
            con.executemany(f"insert into {table} ({','.join(columns[table])}) values ({marks})", out[table])
        con.commit()
    finally:
        con.close()


def time_export(uri: str, experiment: str = "scale") -> tuple[float, float, int]:
    """Wall and CPU seconds of the export (runs_table and configurations_table), rows exported."""
    from dashboards.configurations import configurations_table
    from tokensweep.tracking.export import runs_table as export_runs

    begin, cpu = time.perf_counter(), time.process_time()
    table = export_runs(experiment, uri)
    configurations_table(table)
    return time.perf_counter() - begin, time.process_time() - cpu, table.num_rows


def measure(sizes=SIZES, browser: bool = True, export: bool = True, log=print) -> list[dict]:
    """One row of figures per size."""
    rows = []
    work = Path(tempfile.mkdtemp(prefix="scale-dashboard-"))
    try:
        for n in sizes:
            row = {"runs": n, "load_avg_1m": round(os.getloadavg()[0], 2)}
            row["dashboard_s"], row["dashboard_cpu_s"], size = time_dashboard(runs_table(n), work / f"d{n}")
            row["page_mb"] = round(size / 1e6, 2)
            loads = time_page_load(work / f"d{n}" / "pareto.html") if browser else None
            if loads:
                row["page_load_s"], row["plotly_only_load_s"] = loads
            if export:
                store = work / f"s{n}"
                store.mkdir()
                begin = time.perf_counter()
                uri = write_store(store, n)
                row["store_write_s"] = time.perf_counter() - begin
                row["export_s"], row["export_cpu_s"], exported = time_export(uri)
                assert exported == n, f"exported {exported} of {n} runs"
            log("  " + ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()))
            rows.append(row)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return rows


def per_10x(rows: list[dict], key: str) -> float | None:
    """The figure's growth per 10x of runs between the smallest and the largest size."""
    have = [r for r in rows if r.get(key)]
    if len(have) < 2:
        return None
    first, last = have[0], have[-1]
    decades = math.log10(last["runs"] / first["runs"])
    return (last[key] / first[key]) ** (1 / decades) if decades else None


def run(settings):
    """The benchmark section for `python -m benchmarks` (benchmarks.common.SectionResult)."""
    from benchmarks.common import SectionResult, Target

    sizes = (100, 1_000) if settings.quick else SIZES
    rows = measure(sizes)
    largest = rows[-1]
    n = f"{largest['runs']:,} runs"
    targets = [
        Target(f"dashboard build, {n}", largest["dashboard_s"], DASHBOARD_GOAL_S, " s", False),
        Target(f"page load in Chromium, {n}", largest.get("page_load_s"), PAGE_LOAD_GOAL_S, " s", False),
        Target(f"export from MLflow sqlite, {n}", largest.get("export_s"), None, " s", False),
    ]
    for key in ("dashboard_s", "dashboard_cpu_s", "page_load_s", "export_s"):
        ratio = per_10x(rows, key)
        targets.append(Target(f"{key} growth per 10x runs", ratio, 10.0, "x", False, "10x: linear"))
    columns = ("runs", "load_avg_1m", "dashboard_s", "dashboard_cpu_s", "page_mb", "page_load_s", "plotly_only_load_s",
               "store_write_s", "export_s", "export_cpu_s")  # fmt: skip
    notes = ["page load: best of two in headless Chromium (WebGL by SwiftShader); plotly_only_load_s: a page "
             "holding only plotly.js, the floor of any page on this machine"]  # fmt: skip
    return SectionResult("scale_dashboard", rows, targets, columns, notes)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.scale_dashboard", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    p.add_argument("--no-browser", action="store_true", help="skip the page load in Chromium")
    p.add_argument("--no-export", action="store_true", help="skip the MLflow store and the export")
    args = p.parse_args(argv)
    rows = measure(args.sizes, browser=not args.no_browser, export=not args.no_export)
    print()
    for key in ("dashboard_s", "dashboard_cpu_s", "page_mb", "page_load_s", "plotly_only_load_s", "export_s"):
        figures = "  ".join(f"{r['runs']:>6,}: {r[key]:.3g}" for r in rows if r.get(key) is not None)
        ratio = per_10x(rows, key)
        print(f"{key:<12} {figures}" + (f"   x{ratio:.2f} per 10x runs" if ratio else ""))
    print(f"goals at {max(args.sizes):,} runs: dashboard < {DASHBOARD_GOAL_S:g} s, page load < {PAGE_LOAD_GOAL_S:g} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
