"""The Compare page in a real browser (Chromium at /usr/bin/chromium): two model versions of the same 200
images, the images whose attention moved most listed first with both versions' overlays side by side, and the
sidebar's model version kept in the link."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, ERRORS, SCREENSHOTS, open_page, running_dashboard
from tests.support.versions import expected_moved_order, two_versions

CAPTION = re.compile(r"^Image (\d+) · shift")
PAIRS_DRAWN = """() => {
    const images = [...document.querySelectorAll('[data-testid="stImage"] img')];
    return images.length >= 24 && images.every(i => i.complete && i.naturalWidth > 0);
}"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, list[int]]]:
    folder: Path = tmp_path_factory.mktemp("compare")
    url = f"sqlite:///{folder / 'camwatch.db'}"
    two_versions(folder, url, 200)
    expected = expected_moved_order(url)
    with running_dashboard(url, folder, ["--source-root", str(folder / "images")]) as base:
        yield base, expected


def test_compare_page_lists_the_moved_images_first_in_chromium(server: tuple[str, list[int]]) -> None:
    from playwright.sync_api import sync_playwright

    base, expected = server
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 2400})
            open_page(page, base, "compare?a=1&b=2", "Compare")
            page.wait_for_function(PAIRS_DRAWN, timeout=30_000)
            captions = [CAPTION.match(t.strip()) for t in
                        page.locator('[data-testid="stMarkdownContainer"] p').all_inner_texts()]
            shown = [int(m.group(1)) for m in captions if m is not None]
            assert shown == expected[:12]
            widths = page.eval_on_selector_all('[data-testid="stImage"] img', "els => els.map(e => e.naturalWidth)")
            assert len(widths) == 24 and min(widths) > 0  # version A and version B of each of the 12 images
            assert page.locator(ERRORS).count() == 0
            assert "version=" in page.url and "a=1" in page.url and "b=2" in page.url
            page.screenshot(path=str(SCREENSHOTS / "compare.png"), full_page=True)
        finally:
            browser.close()
