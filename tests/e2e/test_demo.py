"""The demo scenario end to end, checked against the generator's manifest (the ground truth).

A reduced stream (4 days, 800 images from 4 cameras; the cat poster on site-north/cam-2 from day 2, the
lighting change on every camera from day 3) goes through the real worker with the real EfficientNet-Lite0
and Grad-CAM; the reference is day 0 (a capture-time range). Levels asserted, with what was measured:

- drift: ``energy_outside`` of slice ``camera=cam-2`` drifts in every day window from day 2 and in no
  window before it; no slice and not the overall stream drifts on ``energy_outside`` before day 2;
- slices: on tag ``camera`` after the change, cam-2 has the highest flagged share and mean energy outside,
  more than twice the flagged share of any other camera, and its test against the other cameras drifts;
- the ``energy_outside`` flag against planted images: precision >= 0.75 and recall >= 0.75 (measured
  0.82 / 0.85 here; 0.87 / 0.91 on the full 2000-image demo stream);
- root cause: ``brightness`` of all images drifts in every day window from the lighting change and in none
  before it, and the camera models (EXIF) never drift.

``CAMWATCH_DEMO_STREAM=full`` runs ``make demo``'s stream and settings instead (14 days, 2000 images,
poster from day 6, lighting from day 10; the reference is the first 300 images; 10-15 minutes): the tests
calibrated on the reduced stream's single day of reference and single day after the lighting change are
skipped then; the brightness, flag and browser tests run. ``CAMWATCH_UPDATE_DOCS_IMAGES=1`` makes the
browser test save its screenshots of every page as ``docs/img/<page>.png`` (the README's pictures) besides
``test-output/screenshots/``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from dataclasses import replace

import pytest
from sqlalchemy import select

from camwatch.settings import load_settings
from dashboard.analysis import slice_analysis
from db import make_engine
from db.models import DriftResult, Flag
from db.models import Image as ImageRow
from db.queries import ImageFilter, current_reference
from db.queries_images import GalleryFilter, flagged_page
from db.queries_slices import slice_summary
from demo.generate import generate_stream
from demo.timeline import StreamConfig
from tests.support import REPO
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, ERRORS, SCREENSHOTS, open_page, running_dashboard
from worker.service.worker import Worker

AFFECTED = "cam-2"
FULL = os.environ.get("CAMWATCH_DEMO_STREAM") == "full"
REDUCED_ONLY = pytest.mark.skipif(FULL, reason="calibrated on the reduced stream (one reference day, one day after "
                                              "the lighting change)")
IMAGES_LOADED = """() => [...document.querySelectorAll('[data-testid="stImage"] img')]
    .every(i => i.complete && i.naturalWidth > 0)"""


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    stream = root / "stream"
    config = StreamConfig() if FULL else replace(StreamConfig.small(seed=0), days=4, images=800, planted_day=2,
                                                 global_change_day=3)
    manifest = generate_stream(stream, config)
    url = f"sqlite:///{root / 'camwatch.db'}"
    reference = {} if FULL else {"reference": {"kind": "time_range", "start": config.day_start(0).isoformat(),
                                               "end": config.day_start(1).isoformat()}}
    settings = load_settings(db=url, source=[stream], stable_seconds=0.05, poll_seconds=0.05, use_events=False,
                             batch_size=16, drift={"window": "day", "min_samples": 30}, **reference)
    worker = Worker(settings)
    worker.work(burst=True)
    assert worker.errors == 0 and worker.processed == len(manifest.images)
    return config, manifest, make_engine(url), stream


def _uri_to_entry(manifest, stream):  # type: ignore[no-untyped-def]
    return {str((stream / e["path"]).resolve()): e for e in manifest.images}


@REDUCED_ONLY
def test_energy_outside_drifts_after_the_change_and_not_before(demo_run):
    config, _manifest, engine, _ = demo_run
    change: dt.datetime = config.planted_start
    with engine.connect() as conn:
        rows = conn.execute(select(DriftResult.window_start, DriftResult.slice, DriftResult.drifted,
                                   DriftResult.score, DriftResult.test)
                            .where(DriftResult.statistic == "energy_outside", DriftResult.class_index == -1)
                            .order_by(DriftResult.window_start)).all()
    affected = [r for r in rows if r.slice == f"camera={AFFECTED}"]
    assert len(affected) == config.days, affected
    assert not any(r.drifted for r in affected if r.window_start < change), affected
    assert all(r.drifted for r in affected if r.window_start >= change), affected
    before = [r for r in rows if r.window_start < change]
    assert {r.slice for r in before} >= {"", "camera=cam-1", "camera=cam-3", "camera=cam-4"}
    assert not any(r.drifted for r in before), [r for r in before if r.drifted]


def test_brightness_drifts_from_the_lighting_change_and_not_before(demo_run):
    config, _manifest, engine, _ = demo_run
    with engine.connect() as conn:
        rows = conn.execute(select(DriftResult.window_start, DriftResult.statistic, DriftResult.drifted,
                                   DriftResult.score, DriftResult.n_current)
                            .where(DriftResult.statistic.in_(("brightness", "camera_model")),
                                   DriftResult.class_index == -1, DriftResult.slice == "")
                            .order_by(DriftResult.window_start)).all()
    brightness = [r for r in rows if r.statistic == "brightness"]
    assert len(brightness) == config.days, brightness
    change = config.global_change_start
    assert [r.drifted for r in brightness] == [r.window_start >= change for r in brightness], brightness
    models = [r for r in rows if r.statistic == "camera_model"]
    assert len(models) == config.days and not any(r.drifted for r in models), models


@REDUCED_ONLY
def test_affected_camera_stands_out_on_the_slices(demo_run):
    config, _manifest, engine, _ = demo_run
    after = ImageFilter(start=config.planted_start)
    reference = current_reference(engine)
    assert reference is not None
    analysis = slice_analysis(engine, "camera", "energy_outside", after, slice_summary(engine, "camera", after),
                              reference_id=reference.id)
    table = analysis.table.set_index("value")
    assert set(table.index) == {"cam-1", "cam-2", "cam-3", "cam-4"}
    assert table["flagged_share"].idxmax() == AFFECTED
    assert table["mean"].idxmax() == AFFECTED
    others = table.drop(index=AFFECTED)
    assert table.loc[AFFECTED, "flagged_share"] > 2 * others["flagged_share"].max()
    # against the reference, only the affected camera drifts (the lighting change alone does not move
    # energy outside the object much)
    assert bool(table.loc[AFFECTED, "ref_drifted"]) and bool(table.loc[AFFECTED, "drifted"])
    assert not others["ref_drifted"].astype(bool).any(), others[["ref_score", "ref_drifted"]]


def test_energy_outside_flag_finds_the_planted_images(demo_run):
    _config, manifest, engine, stream = demo_run
    entries = _uri_to_entry(manifest, stream)
    with engine.connect() as conn:
        uris = dict(conn.execute(select(ImageRow.id, ImageRow.uri)).all())
        flagged_ids = set(conn.execute(select(Flag.image_id).where(Flag.rule == "energy_outside")).scalars())
    planted = {i for i, uri in uris.items() if entries[uri]["planted"]}
    flagged = flagged_ids & set(uris)
    true_pos = len(planted & flagged)
    precision = true_pos / max(len(flagged), 1)
    recall = true_pos / max(len(planted), 1)
    summary = json.dumps({"planted": len(planted), "flagged": len(flagged), "precision": round(precision, 3),
                          "recall": round(recall, 3)})
    assert len(planted) >= 20, summary
    assert precision >= 0.75 and recall >= 0.75, summary


def test_flagged_gallery_is_dominated_by_the_planted_images(demo_run):
    _config, manifest, engine, stream = demo_run
    entries = _uri_to_entry(manifest, stream)
    first_page = flagged_page(engine, GalleryFilter(), 24, 0)  # the gallery's first page, most severe first
    with engine.connect() as conn:
        uris = dict(conn.execute(select(ImageRow.id, ImageRow.uri)).all())
    planted = [entries[uris[int(i)]]["planted"] for i in first_page["image_id"]]
    assert len(planted) == 24 and sum(planted) >= 20, sum(planted)


def _planted_by_id(engine, manifest, stream):  # type: ignore[no-untyped-def]
    entries = _uri_to_entry(manifest, stream)
    with engine.connect() as conn:
        return {i: entries[uri] for i, uri in conn.execute(select(ImageRow.id, ImageRow.uri)).all()}


def _whole_page(page) -> None:  # type: ignore[no-untyped-def]
    """Make the viewport as tall as the page's main area (it scrolls by itself), so a screenshot holds it all."""
    height = page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
    page.set_viewport_size({"width": 1400, "height": max(900, int(height) + 40)})
    page.wait_for_timeout(1000)
    page.wait_for_selector('[data-test-script-state="notRunning"]', timeout=30_000)


def _review_with_keys(page, planted: dict[int, bool], count: int) -> None:  # type: ignore[no-untyped-def]
    """Review ``count`` images with the keyboard: 1 (correct flag) for planted images, 2 (false alarm) else."""
    pattern = r"#(\d+): where the model looked"
    for _ in range(count):
        page.wait_for_selector('[data-test-script-state="notRunning"]', timeout=30_000)
        text = page.get_by_text(re.compile(pattern)).first.inner_text()
        shown = int(re.search(pattern, text).group(1))  # type: ignore[union-attr]
        page.evaluate("() => document.activeElement && document.activeElement.blur()")
        page.keyboard.press("1" if planted[shown] else "2")
        page.wait_for_function("""previous => { const m = document.body.innerText.match(/#(\\d+): where the model looked/);
                                               return m && Number(m[1]) !== previous; }""", arg=shown, timeout=30_000)


def test_demo_pages_in_a_real_browser(demo_run, tmp_path):
    """Every page on the demo data in Chromium, no error box; screenshots in test-output/screenshots/demo-*.png
    and, with ``CAMWATCH_UPDATE_DOCS_IMAGES=1``, in docs/img/ (the README's pictures)."""
    from playwright.sync_api import sync_playwright

    _config, _manifest, engine, stream = demo_run
    url = engine.url.render_as_string(hide_password=False)
    top = int(flagged_page(engine, GalleryFilter(rule="energy_outside"), 1, 0)["image_id"].iloc[0])
    pages = {
        "overview": ("", "Overview", True),
        "drift": ("drift?statistic=energy_outside&slice=camera:cam-2", "Drift", True),
        "flagged": ("flagged", "Flagged images", False),
        "review": ("review", "Review", False),
        "image": (f"image?image={top}", "Image", False),
        "slices": ("slices?tag=camera", "Slices", True),
        "health": ("health", "Health", False),
    }
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    docs = REPO / "docs" / "img" if os.environ.get("CAMWATCH_UPDATE_DOCS_IMAGES") == "1" else None
    planted = {int(i): entry["planted"] for i, entry in _planted_by_id(engine, _manifest, stream).items()}
    with running_dashboard(url, tmp_path, ["--source-root", str(stream)]) as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1800})
            for name, (path, title, charts) in pages.items():
                open_page(page, base, path, title, charts=charts)
                if name == "review":  # a reviewer works through a dozen images with the keyboard first
                    _review_with_keys(page, planted, 12)
                if name in ("flagged", "review", "image"):
                    page.wait_for_function(IMAGES_LOADED, timeout=30_000)
                errors = page.locator(ERRORS)
                assert errors.count() == 0, f"{name}: {errors.first.inner_text()}"
                _whole_page(page)
                page.screenshot(path=str(SCREENSHOTS / f"demo-{name}.png"), full_page=True)
                if docs is not None:
                    page.screenshot(path=str(docs / f"{name}.png"), full_page=True)
                page.set_viewport_size({"width": 1400, "height": 1800})
            if docs is not None:  # a close-up of the drift matrix, the root cause beside the drift
                open_page(page, base, "drift?statistic=energy_outside&slice=camera:cam-2", "Drift", charts=True)
                page.locator(".js-plotly-plot").first.screenshot(path=str(docs / "drift-matrix.png"))
        finally:
            browser.close()
