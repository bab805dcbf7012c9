"""The dashboard in a real browser: `streamlit run` as a subprocess, every page loaded by Chromium.

Needs Debian's Chromium at /usr/bin/chromium (``make test`` installs it) and Playwright for Python (in the
virtualenv). Screenshots go to ``test-output/screenshots/`` at the repository root.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from db.models import Flag
from db.session import make_engine
from db.synthetic import fill_database

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = ROOT / "test-output" / "screenshots"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
ERRORS = '[data-testid="stException"], [data-testid="stAlertContentError"]'
GALLERY_LOADED = """() => {
    const images = [...document.querySelectorAll('[data-testid="stImage"] img')];
    return images.length >= 24 && images.every(i => i.complete && i.naturalWidth > 0);
}"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_healthy(port: int, server: subprocess.Popen[bytes], log: Path, timeout: float = 45.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"streamlit exited with {server.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.3)
    raise TimeoutError(f"streamlit did not answer on port {port} within {timeout:.0f} s:\n{log.read_text()}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs it (apt-get install -y chromium)")
    folder = tmp_path_factory.mktemp("browser")
    url = f"sqlite:///{folder / 'camwatch.db'}"
    fill_database(url, 800, seed=5, start=dt.datetime.now(dt.UTC) - dt.timedelta(days=4), days=4, cameras=4,
                  reference_size=200)
    engine = make_engine(url)
    with engine.connect() as conn:
        flagged = conn.execute(select(func.max(Flag.image_id))).scalar_one()
    engine.dispose()
    port = _free_port()
    log = folder / "streamlit.log"
    env = {**os.environ, "CAMWATCH_CONFIG": str(folder / "absent.toml")}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(ROOT / "dashboard" / "app.py"), "--server.port",
             str(port), "--server.headless", "true", "--", "--db", url],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_healthy(port, process, log)
        yield f"http://127.0.0.1:{port}", int(flagged)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def test_every_page_renders_in_chromium(server: tuple[str, int]) -> None:
    from playwright.sync_api import sync_playwright

    base, flagged = server
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    pages = {"overview": ("", "Overview"), "drift": ("drift", "Drift"), "flagged": ("flagged", "Flagged images"),
             "image": (f"image?image={flagged}", "Image"), "slices": ("slices", "Slices"), "health": ("health", "Health")}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 2200})  # the main area scrolls itself
            for name, (path, title) in pages.items():
                page.goto(f"{base}/{path}")
                page.get_by_role("heading", name=title, exact=True).wait_for(timeout=30_000)
                page.wait_for_selector('[data-test-script-state="notRunning"]', timeout=30_000)
                page.wait_for_load_state("networkidle")
                if name == "flagged":
                    page.wait_for_function(GALLERY_LOADED, timeout=30_000)
                    widths = page.eval_on_selector_all('[data-testid="stImage"] img', "els => els.map(e => e.naturalWidth)")
                    assert len(widths) == 24 and min(widths) > 0
                if name in ("overview", "drift", "slices"):
                    page.wait_for_selector(".js-plotly-plot", timeout=30_000)
                page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
                errors = page.locator(ERRORS)
                assert errors.count() == 0, f"{name}: {errors.first.inner_text()}"
            # From the gallery to an image: the first card's "Open" link carries ?image=<id>.
            page.goto(f"{base}/flagged")
            page.get_by_role("link", name="Open").first.click()
            page.get_by_role("heading", name="Predictions").wait_for(timeout=30_000)
            assert "image=" in page.url and page.locator(ERRORS).count() == 0
        finally:
            browser.close()
