"""pareto.html in a real headless Chromium (Debian's /usr/bin/chromium, driven by playwright):
it renders offline, fetches nothing, draws the right points, sorts its table and shows hovers.
"""

from pathlib import Path

import pytest

from dashboards.analysis import analyse
from dashboards.build import DEFAULT_X, DEFAULT_Y, build_dashboard
from dashboards.demo import demo_runs
from tokensweep.commands.dashboard import start_server

CHROMIUM = Path("/usr/bin/chromium")
# No sandbox (containers), no GPU, and none of Chromium's own background traffic.
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
               "--disable-component-update", "--disable-sync"]
LOCAL_PREFIXES = ("file://", "http://127.0.0.1", "data:", "blob:", "about:")

pytestmark = [
    pytest.mark.slow,
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
        self.page.goto(url, wait_until="load")
        self.page.wait_for_function("() => document.querySelectorAll('#pareto-chart .scatterlayer .point').length > 0")

    def assert_clean(self):
        assert self.errors == []
        assert [u for u in self.requests if not u.startswith(LOCAL_PREFIXES)] == []


def column_values(page, header: str) -> list[str]:
    return page.evaluate(
        """(header) => {
          const table = document.getElementById("runs-table");
          const col = Array.from(table.tHead.rows[0].cells).findIndex(c => c.textContent.trim() === header);
          return Array.from(table.tBodies[0].rows).map(r => r.cells[col].getAttribute("data-sort"));
        }""",
        header,
    )


def test_page_renders_offline_with_the_right_points_and_a_sortable_table(browser, tmp_path):
    runs = demo_runs()
    analysis = analyse(runs, DEFAULT_X, DEFAULT_Y)
    html = build_dashboard(runs, tmp_path)["pareto.html"]
    visit = Visit(browser, html.as_uri())
    page = visit.page

    counts = page.evaluate(TRACE_COUNTS)
    assert counts["runs"] == len(analysis.competing) == 17
    assert counts["front"] == len(analysis.front) == 7
    assert counts["paper"] == 3  # Table 8's three points with a throughput
    drawn = page.evaluate("() => document.querySelectorAll('#pareto-chart .scatterlayer .point').length")
    assert drawn == counts["runs"] + counts["paper"]  # every point really drawn in the SVG
    assert "NVIDIA H100 80GB HBM3, bf16" in page.text_content("#pareto-chart .gtitle")

    rows = page.evaluate("() => document.querySelectorAll('#runs-table tbody tr').length")
    assert rows == runs.num_rows  # failed, running and incomplete runs are listed too
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

    # Hover on the front's most accurate run shows its name, swept params, device and precision.
    best = max(analysis.front, key=lambda p: p.y).run
    page.evaluate(
        """(runId) => {
          const gd = document.getElementById("pareto-chart");
          gd.data.forEach((t, curve) => {
            const i = (t.meta && t.meta.role === "runs") ? t.customdata.indexOf(runId) : -1;
            if (i >= 0) Plotly.Fx.hover(gd, [{curveNumber: curve, pointNumber: i}]);
          });
        }""",
        best["run_id"],
    )
    hover = page.text_content("#pareto-chart .hoverlayer")
    for text in (best["run_name"], "cluster_iters: 3", "device: NVIDIA H100", "precision: bf16", "params: 17.9M"):
        assert text in hover

    page.screenshot(path=str(tmp_path / "screenshot.png"), full_page=False)
    assert (tmp_path / "screenshot.png").stat().st_size > 10_000
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
        assert page.locator('meta[http-equiv="refresh"]').get_attribute("content") == "3600"
        visit.assert_clean()
    finally:
        server.shutdown()
        server.server_close()
