"""The Review page in a real browser: a reviewer works through 10 images with the keyboard alone, two
reviewers in two browsers never see the same image, and the curated export downloaded from the page holds
the confirmed images with their boxes.

Database: :func:`tests.support.qa.seed_images` -- ids 1..20 flagged by energy_outside with value
0.50 + 0.01 id (the queue serves 20, 19, ... first), each with a thumbnail, an object box and a CAM box."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from db.models import Review
from db.session import make_engine
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, ERRORS, open_page, running_dashboard
from tests.support.databases import migrated_engine
from tests.support.qa import seed_images

SHOWN = re.compile(r"#(\d+): where the model looked")


@pytest.fixture()
def dashboard(tmp_path: Path) -> Iterator[tuple[str, str]]:
    with migrated_engine("sqlite", tmp_path) as engine:
        seed_images(engine, 24, flag_values=[0.51 + 0.01 * k for k in range(20)] + [None] * 4)
        url = engine.url.render_as_string(hide_password=False)
    with running_dashboard(url, tmp_path) as base:
        yield base, url


def _shown(page) -> int:  # type: ignore[no-untyped-def]
    page.wait_for_selector('[data-test-script-state="notRunning"]', timeout=30_000)
    match = SHOWN.search(page.get_by_text(SHOWN).first.inner_text())
    assert match is not None
    return int(match.group(1))


def _press(page, key: str, previous: int) -> int:  # type: ignore[no-untyped-def]
    """Press a verdict key on the page (focus on the body) and wait for the next image."""
    page.evaluate("() => document.activeElement && document.activeElement.blur()")  # keys go to the page
    page.keyboard.press(key)
    page.wait_for_function(
        """previous => { const m = document.body.innerText.match(/#(\\d+): where the model looked/);
                         return m && Number(m[1]) !== previous; }""", arg=previous, timeout=30_000)
    return _shown(page)


def _reviews(url: str) -> list[tuple[int, str]]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return [(int(i), str(v)) for i, v in conn.execute(select(Review.image_id, Review.verdict).order_by(Review.id))]
    finally:
        engine.dispose()


def test_a_reviewer_works_through_ten_images_with_the_keyboard(dashboard: tuple[str, str], tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    base, url = dashboard
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1600}, accept_downloads=True)
            open_page(page, base, "review", "Review")
            current, keys = _shown(page), []
            for _ in range(10):
                key = "1" if current >= 16 else "2"  # the five most severe are right, the next five false alarms
                keys.append((current, key))
                current = _press(page, key, current)
            assert page.locator(ERRORS).count() == 0
            assert _reviews(url) == [(i, "wrong_attention_confirmed" if k == "1" else "false_alarm") for i, k in keys]
            assert [i for i, _ in keys] == list(range(20, 10, -1)) and current == 10
            assert page.get_by_text("10 reviewed in this session").count() == 1
            # the curated export: the five images confirmed as looking at the wrong region, with their boxes
            with page.expect_download(timeout=60_000) as download:
                page.get_by_role("button", name="Download the curated set (COCO with boxes)").click()
            doc = json.loads(Path(download.value.path()).read_text())
            assert sorted(i["id"] for i in doc["images"]) == [16, 17, 18, 19, 20]
            boxes = {(a["image_id"], a["category_id"]): a["bbox"] for a in doc["annotations"]}
            cam = len(doc["categories"])  # the CAM box category comes last
            for image_id in range(16, 21):
                assert boxes[(image_id, (image_id - 1) % 3 + 1)] == [100.0, 50.0, 200.0, 200.0]  # labelled box
                assert boxes[(image_id, cam)] == [320.0, 0.0, 320.0, 240.0]  # where the model looked
        finally:
            browser.close()


def test_two_reviewers_never_see_the_same_image(dashboard: tuple[str, str]) -> None:
    from playwright.sync_api import sync_playwright

    base, url = dashboard
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            ana = browser.new_context(viewport={"width": 1400, "height": 1400}).new_page()
            ben = browser.new_context(viewport={"width": 1400, "height": 1400}).new_page()
            open_page(ana, base, "review", "Review")
            open_page(ben, base, "review", "Review")
            shown = {"ana": _shown(ana), "ben": _shown(ben)}
            assert shown["ana"] != shown["ben"] and {shown["ana"], shown["ben"]} == {20, 19}
            for _ in range(4):
                shown["ana"] = _press(ana, "2", shown["ana"])
                assert shown["ana"] != shown["ben"]
                shown["ben"] = _press(ben, "4", shown["ben"])
                assert shown["ana"] != shown["ben"]
            reviewed = [i for i, _ in _reviews(url)]
            assert len(reviewed) == len(set(reviewed)) == 8  # nobody reviewed an image the other held
        finally:
            browser.close()
