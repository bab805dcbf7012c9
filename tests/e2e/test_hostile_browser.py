"""Hostile strings in a real browser: file names, labels, tags, error texts and a reviewer crafted as
markdown links, remote images and HTML are shown as literal text on every page (no live link, no request to
the remote host), and a 12-pixel box on a 4000-pixel image is drawn in the gallery and on the Image page."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select

from camwatch.monitoring.flags import FlagConfig
from camwatch.settings import load_settings
from dashboard.literal import WORD_JOINER
from db.models import Image as ImageRow
from db.reviews import record_verdict
from db.session import make_engine
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS, open_page, running_dashboard
from tests.support.models import TINY_SPEC
from worker.service.worker import Worker

EVIL = "evil.example"
LABEL = f"[re-login](https://{EVIL}/login) <img src=https://{EVIL}/x.png>"
TAG = f"![beacon](https://{EVIL}/beacon.png)"
NAME = f"[click](https:{EVIL}) photo.jpg"
BROKEN = f"![b](https:{EVIL}) broken.jpg"
REVIEWER = f"[admin](https://{EVIL}/admin)"
EXCEPTIONS = '[data-testid="stException"]'
LEAKS = f"""() => [...document.querySelectorAll('*')].flatMap(e => [...e.attributes]
    .filter(a => /^(href|src|srcset|xlink:href|action|formaction|poster|data)$/i.test(a.name)
                 && a.value.includes('{EVIL}')).map(a => e.tagName + ' ' + a.name + '=' + a.value))"""


def _photo(path: Path, size: tuple[int, int], seed: int) -> None:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path, quality=80)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, int]]]:
    folder = tmp_path_factory.mktemp("hostile")
    src = folder / "src"
    (src / "cam").mkdir(parents=True)
    for i in range(6):
        _photo(src / "cam" / f"plain{i}.jpg", (64, 48), i)
        (src / "cam" / f"plain{i}.jpg.json").write_text(json.dumps({"tags": {"camera": TAG if i % 2 else "north"},
                                                                    "boxes": [[2, 2, 30, 30]]}))
    _photo(src / "cam" / NAME, (64, 48), 10)
    (src / "cam" / f"{NAME}.json").write_text(json.dumps({"label": LABEL, "tags": {"camera": TAG, TAG: LABEL},
                                                          "boxes": [[1, 1, 20, 20]]}))
    (src / "cam" / BROKEN).write_text("not an image")
    big = np.full((3000, 4000, 3), 120, dtype=np.uint8)
    Image.fromarray(big).save(src / "cam" / "big.jpg", quality=60)
    (src / "cam" / "big.jpg.json").write_text(json.dumps({"boxes": [[1990, 1490, 2002, 1502]], "label": "speck"}))
    url = f"sqlite:///{folder / 'camwatch.db'}"
    settings = load_settings(db=url, source=[src], model=TINY_SPEC, stable_seconds=0, poll_seconds=0.05,
                             use_events=False, thumbnails="all", flags=FlagConfig(low_confidence_min=1.01))
    Worker(settings).work(burst=True)  # every image flagged (confidence < 1.01), so all are in the gallery
    engine = make_engine(url)
    with engine.connect() as conn:
        ids = {Path(uri).name: int(i) for uri, i in conn.execute(select(ImageRow.uri, ImageRow.id))}
    record_verdict(engine, image_id=ids[NAME], verdict="false_alarm", note=f"see [here](https://{EVIL})",
                   reviewer=REVIEWER, actor=REVIEWER, client="127.0.0.1")
    engine.dispose()
    with running_dashboard(url, folder, ["--source-root", str(src)]) as base:
        yield base, ids


def test_hostile_strings_render_literally_and_load_nothing_remote(server: tuple[str, dict[str, int]]) -> None:
    from playwright.sync_api import sync_playwright

    base, ids = server
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    pages = [("", "Overview"), ("flagged", "Flagged images"), (f"image?image={ids[NAME]}", "Image"),
             (f"image?image={ids[BROKEN]}", "Image"), ("slices?tag=camera", "Slices"), ("drift", "Drift"),
             ("health", "Health"), ("image?image=%C2%B2", "Image")]
    requested: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 2400})
            page.on("request", lambda r: requested.append(r.url))
            for n, (path, title) in enumerate(pages):
                open_page(page, base, path, title, charts=path.startswith(("slices", "health")))
                assert page.locator(EXCEPTIONS).count() == 0, f"{path}: {page.locator(EXCEPTIONS).first.inner_text()}"
                assert page.evaluate(LEAKS) == [], path
                page.screenshot(path=str(SCREENSHOTS / f"hostile-{n}-{path.split('?')[0] or 'overview'}.png"),
                                full_page=True)
                if path.startswith("image?image=" + str(ids[NAME])):
                    body = page.inner_text("body").replace(WORD_JOINER, "")
                    assert LABEL in body and f"[click](https:{EVIL}) photo.jpg" in body and TAG in body
                    # the audit trail is on the page (the grid adds its accessible cells once scrolled into view)
                    page.get_by_text("Audit trail", exact=True).scroll_into_view_if_needed()
                    page.get_by_text("reviewed", exact=True).first.wait_for(state="attached", timeout=15_000)
                if path.endswith(str(ids[BROKEN])):
                    assert f"![b](https:{EVIL}) broken.jpg: not an allowed image format" in page.inner_text(
                        "body").replace(WORD_JOINER, "")
                if path.endswith("%C2%B2"):  # ?image=² : a friendly note, not a traceback
                    assert "is not an id" in page.inner_text("body")
        finally:
            browser.close()
    assert not [u for u in requested if EVIL in u]


def test_a_twelve_pixel_box_on_a_4000_pixel_image_renders(server: tuple[str, dict[str, int]]) -> None:
    from playwright.sync_api import sync_playwright

    base, ids = server
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 2400})
            open_page(page, base, "flagged", "Flagged images")
            page.wait_for_function("""() => [...document.querySelectorAll('[data-testid="stImage"] img')]
                                       .filter(i => i.complete && i.naturalWidth > 0).length >= 8""", timeout=30_000)
            assert page.locator(EXCEPTIONS).count() == 0
            assert page.get_by_text(f"#{ids['big.jpg']} (").count() == 1  # its card has a picture
            open_page(page, base, f"image?image={ids['big.jpg']}", "Image")
            page.wait_for_function("""() => [...document.querySelectorAll('[data-testid="stImage"] img')]
                                       .filter(i => i.complete && i.naturalWidth > 0).length >= 3""", timeout=30_000)
            assert page.locator(EXCEPTIONS).count() == 0
        finally:
            browser.close()
