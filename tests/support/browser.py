"""Shared helpers for real-browser tests: run the dashboard with `streamlit run`, drive Debian's Chromium.

Needs /usr/bin/chromium (``make test`` installs it) and Playwright for Python (in the virtualenv).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support import REPO

ROOT = REPO
CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = ROOT / "test-output" / "screenshots"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
ERRORS = '[data-testid="stException"], [data-testid="stAlertContentError"]'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(port: int, server: subprocess.Popen[bytes], log: Path, timeout: float = 45.0) -> None:
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


@contextmanager
def running_dashboard(url: str, folder: Path, extra: Sequence[str] = ()) -> Iterator[str]:
    """``streamlit run dashboard/app.py -- --db URL [extra]`` on a free port; yields the base URL."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs it (apt-get install -y chromium)")
    port = free_port()
    log = folder / "streamlit.log"
    env = {**os.environ, "CAMWATCH_CONFIG": str(folder / "absent.toml")}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(ROOT / "dashboard" / "app.py"), "--server.port",
             str(port), "--server.headless", "true", "--", "--db", url, *extra],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_healthy(port, process, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def open_page(page, base: str, path: str, title: str, *, charts: bool = False) -> None:  # type: ignore[no-untyped-def]
    """Load a dashboard page and wait until Streamlit is idle (and plotly charts drawn, if asked)."""
    page.goto(f"{base}/{path}")
    page.get_by_role("heading", name=title, exact=True).wait_for(timeout=30_000)
    page.wait_for_selector('[data-test-script-state="notRunning"]', timeout=30_000)
    page.wait_for_load_state("networkidle")
    if charts:
        page.wait_for_selector(".js-plotly-plot", timeout=30_000)
