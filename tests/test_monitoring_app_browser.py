"""End to end for the manager: a real Streamlit server and a real Chromium render the monitoring page."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from playwright.sync_api import expect, sync_playwright

PROJECT_ROOT = Path(__file__).resolve().parents[1]
APP = PROJECT_ROOT / "monitoring_app" / "streamlit_app.py"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
STARTUP_TIMEOUT_S = 60


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_healthy(url: str, server: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"streamlit exited with {server.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    raise AssertionError(f"streamlit not healthy at {url} after {STARTUP_TIMEOUT_S} s:\n{log.read_text()}")


@pytest.fixture
def app_url(published_db: Path, tmp_path: Path) -> Iterator[str]:
    """A Streamlit server on a free local port serving the page over the published file; stopped after."""
    port = _free_port()
    log = tmp_path / "streamlit.log"
    env = {**os.environ, "MLOPS_PUBLISHED": str(published_db)}
    with log.open("w") as out:
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streamlit",
                "run",
                str(APP),
                "--server.address",
                "127.0.0.1",
                "--server.port",
                str(port),
                "--server.headless",
                "true",
                "--browser.gatherUsageStats",
                "false",
            ],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_until_healthy(f"http://127.0.0.1:{port}/_stcore/health", server, log)
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _published(path: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql).fetchall()


def test_manager_sees_the_rendered_page(app_url: str, published_db: Path, tmp_path: Path):
    (version,) = _published(published_db, "select version from ml.model_versions where status = 'champion'")[0]
    alerts = _published(published_db, "select subject, state from monitoring.alert_list order by state <> 'open'")
    assert alerts, "the replay should open at least one alert"
    (drifted,) = _published(
        published_db, "select arg_max(drifted_features, partition_date) from monitoring.daily_summary"
    )[0]
    assert drifted, "the replay should show drift on its last day"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.goto(app_url)

            charts = page.locator('[data-testid="stVegaLiteChart"]')
            # Vega draws into a canvas (or an svg) once the chart's data has arrived.
            expect(charts.first.locator("canvas, svg").first).to_be_visible(timeout=60_000)
            # ROC-AUC realised and estimated, predicted vs actual rate, estimate error, drift heatmap, drifted share.
            expect(charts).to_have_count(5, timeout=30_000)
            for chart in charts.all():
                expect(chart.locator("canvas, svg").first).to_be_visible(timeout=30_000)
            # Let the script run finish, then make sure nothing failed on the way.
            expect(page.locator('[data-testid="stStatusWidget"]')).to_have_count(0, timeout=30_000)
            assert page.locator('[data-testid="stException"]').count() == 0

            headline = page.locator('[data-testid="stMetric"]').first
            expect(headline).to_contain_text("Live version")
            expect(headline).to_contain_text(f"v{version}")
            for title in ("Alerts", "Performance over time", "Performance by segment", "Drift per feature and day"):
                expect(page.get_by_text(title, exact=True)).to_be_visible()
            # The alert table draws on a canvas; its accessible copy in the page holds the cells' text.
            subject, _ = alerts[0]
            shown = "model score" if subject == "__prediction__" else subject
            alert_table = page.locator('[data-testid="stDataFrame"]').first
            expect(alert_table.get_by_text(shown, exact=True).first).to_be_attached()
            expect(page.get_by_text(f"Drifted on the latest day: {drifted}.")).to_be_visible()

            # The page scrolls inside its own container, so a full-page screenshot needs a viewport that tall.
            content = page.locator('[data-testid="stMainBlockContainer"]')
            height = content.evaluate("element => element.scrollHeight")
            page.set_viewport_size({"width": 1600, "height": int(height) + 120})
            screenshot = tmp_path / "monitoring_page.png"
            page.screenshot(path=str(screenshot))
            assert screenshot.stat().st_size > 10_000
        finally:
            browser.close()
