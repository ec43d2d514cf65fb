"""A real smoke sweep opened in a real `mlflow ui` in headless Chromium, as the README says to: the link
the sweep prints opens the experiment on its runs (not MLflow 3.17's GenAI overview), the sweep's
parent run expands into its four trials, and every row has its Dataset and Source filled.

A screenshot of the expanded page is saved as mlflow-ui.png in the test's tmp_path (pytest
--basetemp=DIR keeps it).
"""

import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from helpers import BIN, ONE_AT_A_TIME, free_port, run_cli, SWEEPS
from sweep_helpers import sweep_runs

CHROMIUM = Path("/usr/bin/chromium")
# headless, no sandbox (containers), none of Chromium's own background traffic; a fresh profile per test
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]  # fmt: skip

# the page shows what was recorded, not what the trials learned: the smoke sweep's four trials, one short epoch each
RECORDED_ONLY = [f"--set={key}" for key in ("trial.epochs=1", "trial.max_steps_per_epoch=2", "trial.tiny_train_per_class=8",
                                            "trial.tiny_val_per_class=4", "bench.enabled=false", "tracking.system_metrics=false",
                                            ONE_AT_A_TIME)]  # fmt: skip

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not at /usr/bin/chromium (.ci/run installs it)"),
]


class MlflowUi:
    """`mlflow ui --backend-store-uri sqlite:///... --host 127.0.0.1 --port P` in its own session."""

    def __init__(self, db: Path, log: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [str(BIN / "mlflow"), "ui", "--backend-store-uri", f"sqlite:///{db}", "--host", "127.0.0.1",
               "--port", str(self.port), "--workers", "1"]  # fmt: skip
        # MLflow's job runner (huey consumers, ~20 s of start-up on 2 cores) serves nothing the UI shows here
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
        env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
        self.log = open(log, "w")
        self.proc = subprocess.Popen(cmd, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 180
        while not self._healthy():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"mlflow ui did not come up: {log.read_text()[-3000:]}")
            time.sleep(0.5)

    def _healthy(self) -> bool:
        try:
            urllib.request.urlopen(f"{self.url}/health", timeout=2).close()
            return True
        except (urllib.error.URLError, OSError):
            return False

    def stop(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.proc.pid, sig)
                self.proc.wait(timeout=20)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        self.log.close()


def cells(page, col_id: str, inner: str | None = None) -> dict[int, str]:
    """row index -> the text of that column's cell, or of `inner` in it (ag-grid splits a row between
    containers: the row index joins them)."""
    out = {}
    for cell in page.locator(f"[role=row][row-index] [col-id='{col_id}']").all():
        row = cell.locator("xpath=ancestor::*[@role='row'][1]")
        text = (cell.locator(inner).first if inner else cell).inner_text(timeout=5_000)  # short: `settled` reads again
        out[int(row.get_attribute("row-index", timeout=5_000))] = text.strip()
    return out


def settled(read, done, timeout: float = 120):
    """read() again until done(value) or the timeout; the last value, for the caller to assert on.
    The grid draws its rows and then their cells a moment apart, seconds apart on a busy machine."""
    from playwright.sync_api import Error

    deadline = time.monotonic() + timeout
    while True:
        try:
            value = read()
        except Error as err:  # a cell redrawn while it was read
            value = err
        if (not isinstance(value, Error) and done(value)) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    if isinstance(value, Error):
        raise value
    return value


def test_smoke_sweep_opens_on_its_runs_with_dataset_and_source(tmp_path, ray_head):
    from playwright.sync_api import sync_playwright

    proc = run_cli(["run", SWEEPS / "smoke.toml", *RECORDED_ONLY, "--address", ray_head.address], cwd=tmp_path,
                   env=ray_head.env, timeout=600, check_rc=0)  # fmt: skip
    link = re.search(r"then open (http://127\.0\.0\.1:5000/\S+)", proc.stdout)
    assert link, proc.stdout
    db = tmp_path / "mlflow.db"
    parents, children = sweep_runs(db, "smoke")
    digest = children[0].data.tags["dataset_digest"]

    ui = MlflowUi(db, tmp_path / "mlflow-ui.log")
    try:
        with sync_playwright() as playwright:
            context = playwright.chromium.launch_persistent_context(
                str(tmp_path / "chromium-profile"), executable_path=str(CHROMIUM), args=CHROMIUM_ARGS,
                viewport={"width": 1500, "height": 900},
            )  # fmt: skip
            page = context.new_page()
            page.goto(link[1].replace("http://127.0.0.1:5000", ui.url))
            page.get_by_text("5 matching runs").wait_for(timeout=120_000)  # the parent and its four trials
            assert "No data available" not in page.inner_text("body")  # not the GenAI overview
            assert "workflowType=machine_learning" in page.url
            names = settled(lambda: cells(page, "attributes.`Run Name`", "a"), lambda got: list(got.values()) == ["smoke"])
            assert list(names.values()) == ["smoke"], names  # the children are folded under their parent
            page.locator("[col-id='attributes.`Run Name`'] button").first.click()  # expand the parent
            page.get_by_text("vit_tiny_patch").wait_for(timeout=120_000)

            def rows():
                return cells(page, "attributes.`Run Name`", "a"), cells(page, "attributes.`Dataset`"), cells(page, "attributes.`Source`")

            names, datasets, sources = settled(rows, lambda got: len(got[0]) == 5 and all(c.get(r) for c in got[1:] for r in got[0]))
            try:
                page.get_by_role("button", name=re.compile("close", re.I)).last.click(timeout=3000)  # the assistant panel
            except Exception:
                pass
            page.screenshot(path=str(tmp_path / "mlflow-ui.png"))
            context.close()
    finally:
        ui.stop()
    trial_names = {c.info.run_name for c in children}
    assert sorted(names.values()) == sorted(["smoke", *trial_names]), names
    for row, name in names.items():
        assert sources[row] == "smoke.toml", (name, sources)
        assert datasets[row].startswith(f"tiny ({digest})"), (name, datasets)  # the parent lists its trials' data
    print(f"\nscreenshot: {tmp_path / 'mlflow-ui.png'}")
