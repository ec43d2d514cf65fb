"""Regenerate this folder's example from the SYNTHETIC runs in dashboards/demo.py (not measurements).

    .venv/bin/python dashboards/examples/make_example.py

Writes pareto.png and pareto.json (as `tokensweep dashboard` would) and screenshot.png (the top of
pareto.html in headless Chromium, as tests/e2e/dashboards/test_dashboard_browser.py drives it: Debian's
`chromium` package, found on PATH). pareto.html itself is ~5 MB (plotly.js inlined) and is not
kept here; `python -m dashboards.demo OUT_DIR` writes it.
"""

import shutil
import sys
import tempfile
from pathlib import Path

from dashboards.build import build_dashboard
from dashboards.demo import demo_runs

HERE = Path(__file__).resolve().parent
# No sandbox (containers), none of Chromium's background traffic, WebGL in software (no GPU needed).
LAUNCH_ARGS = ["--no-sandbox", "--no-first-run", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"]  # fmt: skip


def chromium() -> str:
    """Debian's Chromium (playwright cannot download its own browser without internet)."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        raise SystemExit("make_example: no chromium on PATH (Debian: apt-get install chromium)")
    return path


def screenshot(html: Path, png: Path, width: int = 1280, height: int = 1000) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium(), args=LAUNCH_ARGS)
        page = browser.new_page(viewport={"width": width, "height": height})
        page.goto(html.as_uri(), wait_until="load")
        page.wait_for_function("() => document.querySelectorAll('#pareto-chart .scatterlayer .point').length > 0")
        page.screenshot(path=str(png))
        browser.close()


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        paths = build_dashboard(demo_runs(), tmp)
        for name in ("pareto.png", "pareto.json"):
            shutil.copyfile(paths[name], HERE / name)
        screenshot(paths["pareto.html"], HERE / "screenshot.png")
    for name in ("screenshot.png", "pareto.png", "pareto.json"):
        print(f"{HERE / name}: {(HERE / name).stat().st_size / 1024:.0f} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
