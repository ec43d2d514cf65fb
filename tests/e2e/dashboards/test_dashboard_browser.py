"""pareto.html in a real headless Chromium (Debian's /usr/bin/chromium, driven by playwright):
it renders offline, fetches nothing, draws the configurations' means with whiskers and their seeds,
keeps its legend off the plot, sorts its tables, shows hovers, and still works with thousands of
runs (WebGL points, a table shown a page of rows at a time).
"""

import time
from pathlib import Path

import pytest

from benchmarks.scale_dashboard import runs_table as scale_runs
from dashboards.analysis import analyse
from dashboards.build import DEFAULT_X, DEFAULT_Y, build_dashboard
from dashboards.demo import demo_runs
from dashboards.page_js import PAGE_ROWS
from dashboards.references import reference_marks
from tokensweep.commands.dashboard import start_server

CHROMIUM = Path("/usr/bin/chromium")
# No sandbox (containers), none of Chromium's own background traffic, and WebGL (plotly's scattergl)
# drawn in software: there is no GPU.
LAUNCH_ARGS = ["--no-sandbox", "--no-first-run", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"]
LOCAL_PREFIXES = ("file://", "http://127.0.0.1", "data:", "blob:", "about:")

pytestmark = [
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="Debian's chromium is not at /usr/bin/chromium (apt-get install -y chromium; .ci/run installs it)",
    ),
]

TRACE_COUNTS = """() => {
  const counts = {};
  for (const t of document.getElementById("pareto-chart").data) {
    const role = (t.meta && t.meta.role) || "other";
    counts[role] = (counts[role] || 0) + t.x.length;
  }
  return counts;
}"""


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        yield browser
        browser.close()


class Visit:
    """A page with every console error, page error and request it made recorded."""

    def __init__(self, browser, url: str):
        self.errors, self.requests = [], []
        self.page = browser.new_page(viewport={"width": 1280, "height": 900})
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.goto(url, wait_until="load", timeout=120_000)
        self.page.wait_for_function("() => document.querySelector('#pareto-chart .plot-container') !== null",
                                    timeout=120_000)  # fmt: skip

    def assert_clean(self):
        assert self.errors == []
        assert [u for u in self.requests if not u.startswith(LOCAL_PREFIXES)] == []


def column_values(page, header: str, table: str = "runs-table") -> list[str]:
    return page.evaluate(
        """([header, table]) => {
          const t = document.getElementById(table);
          const col = Array.from(t.tHead.rows[0].cells).findIndex(c => c.textContent.trim() === header);
          return Array.from(t.tBodies[0].rows).map(r => r.cells[col].getAttribute("data-sort"));
        }""",
        [header, table],
    )


HOVER = """(ref) => {
  const gd = document.getElementById("pareto-chart");
  gd.data.forEach((t, curve) => {
    const i = (t.customdata || []).indexOf(ref);
    if (i >= 0 && t.meta && t.meta.role !== "paper") Plotly.Fx.hover(gd, [{curveNumber: curve, pointNumber: i}]);
  });
  return document.querySelector("#pareto-chart .hoverlayer").textContent;
}"""

def hover(page, ref: str, expect: str) -> str:
    """The hover text of the point whose customdata is `ref`; retried until it shows `expect`
    (plotly throttles hover events: a second one right after the first is dropped)."""
    deadline = time.monotonic() + 30
    while True:
        text = page.evaluate(HOVER, ref)
        if expect in text or time.monotonic() > deadline:
            return text
        page.wait_for_timeout(100)


BOXES = """() => {
  const box = s => document.querySelector("#pareto-chart " + s).getBoundingClientRect();
  const [legend, plot] = [box(".legend"), box(".nsewdrag")];
  const edges = b => [b.left, b.top, b.right, b.bottom];
  return {legend: edges(legend), plot: edges(plot)};
}"""


def overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def test_page_draws_means_with_whiskers_and_seeds_and_sorts_its_tables(browser, tmp_path):
    runs = demo_runs()
    analysis = analyse(runs, DEFAULT_X, DEFAULT_Y)
    html = build_dashboard(runs, tmp_path)["pareto.html"]
    visit = Visit(browser, html.as_uri())
    page = visit.page

    counts = page.evaluate(TRACE_COUNTS)
    replicated = [c for c in analysis.configurations if c.n > 1]
    assert counts["configurations"] == len(analysis.configurations) == 11  # one point per configuration, at its mean
    assert counts["seeds"] == sum(c.n for c in replicated) == 30  # the seeds of the replicated ones, faint
    assert counts["front"] == len(analysis.config_front) == 4
    assert counts["paper"] == len(reference_marks(analysis).points) == 3  # Table 8, inside the sweep's range
    drawn = page.evaluate("() => document.querySelectorAll('#pareto-chart .scatterlayer .point').length")
    assert drawn == counts["configurations"] + counts["seeds"] + counts["paper"]  # every point really drawn (SVG)
    whiskers = page.evaluate("() => document.querySelectorAll('#pareto-chart .errorbar path').length")
    assert whiskers >= 2 * len(replicated)  # an x and a y whisker per configuration with an interval
    assert "NVIDIA H100 80GB HBM3, bf16" in page.text_content("#pareto-chart .gtitle")
    boxes = page.evaluate(BOXES)
    assert not overlap(boxes["legend"], boxes["plot"])  # the legend hides no point

    rows = page.evaluate("() => document.querySelectorAll('#runs-table tbody tr').length")
    assert rows == runs.num_rows  # failed, running and incomplete runs are listed too
    assert page.evaluate("() => document.querySelectorAll('#configs-table tbody tr').length") == len(replicated)
    # every pair of the 12 finished configurations (the one without a throughput too), top-1 and images/sec
    assert page.evaluate("() => document.querySelectorAll('#differences-table tbody tr').length") == 2 * 66
    page.click("#runs-table th:text-is('top1')")
    ascending = column_values(page, "top1")
    numbers = [float(v) for v in ascending if v != ""]
    assert numbers == sorted(numbers) and ascending[len(numbers):] == [""] * (len(ascending) - len(numbers))
    page.click("#runs-table th:text-is('top1')")
    descending = [float(v) for v in column_values(page, "top1") if v != ""]
    assert descending == sorted(numbers, reverse=True)
    page.click("#runs-table th:text-is('run')")
    names = column_values(page, "run")
    assert names == sorted(names, key=str.lower) or names == sorted(names)
    page.click("#configs-table th:text-is('n')")
    assert len(column_values(page, "n", "configs-table")) == len(replicated)

    # Hover on the most accurate front configuration: its name, n, mean ± interval, knobs, device, precision.
    best = max(analysis.config_front, key=lambda c: c.y.mean)
    text_of = hover(page, f"c{replicated.index(best)}", best.name)
    for text in (best.name, "n: 3", f"top1: {best.y.mean:.2f} ± ", "cluster_iters: 3", "device: NVIDIA H100",
                 "precision: bf16", "params: 18M"):  # fmt: skip
        assert text in text_of, (text, text_of)
    # ... and on one of its seeds: that run, and the configuration it belongs to.
    seed = best.points[0].run
    text_of = hover(page, f"r{[p.run['run_id'] for p in analysis.points].index(seed['run_id'])}", seed["run_name"])
    assert seed["run_name"] in text_of and f"configuration: {best.name}" in text_of

    page.screenshot(path=str(tmp_path / "screenshot.png"), full_page=False)
    assert (tmp_path / "screenshot.png").stat().st_size > 10_000
    visit.assert_clean()


def test_thousands_of_runs_draw_with_webgl_and_a_paged_table(browser, tmp_path):
    """The scale issue's page at a modest size (the benchmark times 10,000): WebGL traces, the runs
    table a page of rows at a time, every run reachable through the pager."""
    runs = scale_runs(2_000)
    visit = Visit(browser, build_dashboard(runs, tmp_path)["pareto.html"].as_uri())
    page = visit.page
    types = page.evaluate("() => document.getElementById('pareto-chart').data.map(t => [t.meta.role, t.type])")
    assert {t for role, t in types if role in ("configurations", "seeds", "front")} == {"scattergl"}
    counts = page.evaluate(TRACE_COUNTS)
    assert counts["seeds"] == 2_000 and counts["configurations"] == 667  # 3 seeds each, 2 in the last
    assert page.evaluate("() => document.querySelectorAll('#runs-table tbody tr').length") == PAGE_ROWS
    assert f"rows 1–{PAGE_ROWS} of 2000" in page.text_content("#runs-table-box .pager")
    seen = set()
    while True:
        seen.update(page.evaluate("() => Array.from(document.querySelectorAll('#runs-table tbody tr'), r => r.dataset.key)"))
        button = page.locator("#runs-table-box .pager button:text-is('next ›')")
        if button.is_disabled():
            break
        button.click()
    assert seen == set(runs.column("run_id").to_pylist())
    visit.assert_clean()


def test_served_optuna_page_shows_hypervolume_and_reloads(browser, tmp_path):
    runs = demo_runs(optuna=True)
    build_dashboard(runs, tmp_path, refresh_seconds=3600)
    server = start_server(tmp_path, "127.0.0.1", 0)
    try:
        visit = Visit(browser, f"http://127.0.0.1:{server.server_address[1]}/pareto.html")
        page = visit.page
        page.wait_for_function("() => document.querySelectorAll('#hypervolume-chart .scatterlayer .point').length")
        hv = page.evaluate("() => document.getElementById('hypervolume-chart').data[0].y")
        assert len(hv) == runs.num_rows and hv == sorted(hv) and 0 < hv[-1] <= 1
        names = page.evaluate("() => document.getElementById('hypervolume-chart').data[0].hovertext")
        assert names[0] == "patch-s0"  # hover: the trial's run name, from the runs table
        assert page.locator('meta[http-equiv="refresh"]').get_attribute("content") == "3600"
        visit.assert_clean()
    finally:
        server.shutdown()
        server.server_close()
