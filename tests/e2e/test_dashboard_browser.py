"""The dashboard in a real browser: `streamlit run` as a subprocess, every page loaded by Chromium.

Needs Debian's Chromium at /usr/bin/chromium (``make test`` installs it) and Playwright for Python (in the
virtualenv). Screenshots go to ``test-output/screenshots/`` at the repository root.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from db.models import Flag
from db.session import make_engine
from demo.synthetic.fill import fill_database
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, ERRORS, SCREENSHOTS, open_page, running_dashboard

GALLERY_LOADED = """() => {
    const images = [...document.querySelectorAll('[data-testid="stImage"] img')];
    return images.length >= 24 && images.every(i => i.complete && i.naturalWidth > 0);
}"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    folder = tmp_path_factory.mktemp("browser")
    url = f"sqlite:///{folder / 'camwatch.db'}"
    fill_database(url, 800, seed=5, start=dt.datetime.now(dt.UTC) - dt.timedelta(days=4), days=4, cameras=4,
                  reference_size=200)
    engine = make_engine(url)
    with engine.connect() as conn:
        flagged = conn.execute(select(func.max(Flag.image_id))).scalar_one()
    engine.dispose()
    with running_dashboard(url, folder) as base:
        yield base, int(flagged)


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
                open_page(page, base, path, title, charts=name in ("overview", "drift", "slices"))
                if name == "flagged":
                    page.wait_for_function(GALLERY_LOADED, timeout=30_000)
                    widths = page.eval_on_selector_all('[data-testid="stImage"] img', "els => els.map(e => e.naturalWidth)")
                    assert len(widths) == 24 and min(widths) > 0
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
