"""Every dashboard page through streamlit.testing's AppTest, on a seeded database and on an empty one."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image as PILImage
from sqlalchemy import func, select, update
from streamlit.testing.v1 import AppTest

from db.models import Flag, Image, ReferenceMember, Review
from db.session import make_engine
from demo.synthetic.fill import fill_database
from tests.support import REPO

APP = str(REPO / "dashboard" / "app.py")
PAGES = {"overview": None, "drift": "app_pages/drift.py", "flagged": "app_pages/flagged.py",
         "review": "app_pages/review.py", "image": "app_pages/image.py", "slices": "app_pages/slices.py",
         "health": "app_pages/health.py"}
TITLES = {"overview": "Overview", "drift": "Drift", "flagged": "Flagged images", "review": "Review", "image": "Image",
          "slices": "Slices", "health": "Health"}


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A small realistic database whose data ends now (it spans 6 days: the default time range shows it all)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('seeded') / 'camwatch.db'}"
    fill_database(url, 1500, seed=3, start=dt.datetime.now(dt.UTC) - dt.timedelta(days=6), days=6, cameras=4,
                  reference_size=300, pending=20)
    return url


@pytest.fixture(scope="module")
def empty(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('empty') / 'camwatch.db'}"  # created by the dashboard


Opener = Callable[..., AppTest]


@pytest.fixture()
def open_page(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Opener:
    monkeypatch.setenv("CAMWATCH_CONFIG", str(tmp_path / "absent.toml"))  # ignore any ./camwatch.toml

    def opener(url: str, page: str, query_params: dict[str, str] | None = None, **env: str) -> AppTest:
        monkeypatch.setenv("CAMWATCH_DB", url)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        at = AppTest.from_file(APP, default_timeout=60)
        for key, value in (query_params or {}).items():
            at.query_params[key] = value
        at.run()
        path = PAGES[page]
        if path is not None:
            at.switch_page(path).run()
        assert not at.exception, [e.value for e in at.exception]
        return at

    return opener


def _scalar(url: str, stmt: Any) -> Any:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(stmt).scalar_one()
    finally:
        engine.dispose()


def _metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def _charts(at: AppTest) -> int:
    return len(at.get("plotly_chart"))


def _flagged_image(url: str) -> int:
    return int(_scalar(url, select(func.max(Flag.image_id))))


@pytest.mark.parametrize("page", list(PAGES))
def test_page_renders_on_a_seeded_database(page: str, seeded: str, open_page: Opener) -> None:
    params = {"image": str(_flagged_image(seeded))} if page == "image" else None
    at = open_page(seeded, page, params)
    assert [t.value for t in at.title] == [TITLES[page]]
    assert not at.error
    if page == "overview":
        processed = _scalar(seeded, select(func.count()).where(Image.status.in_(("ok", "error"))))
        assert _metric(at, "Images processed") == f"{processed:,}"
        assert _charts(at) == 3  # throughput, attention statistics grid, image properties grid
        assert at.selectbox(key="camwatch_time_range").value == "All time"  # less than 30 days of data
    elif page == "drift":
        # drift matrix, statistic, drift scores, image properties, camera models, class mix, heatmap pairs
        assert _charts(at) >= 8
    elif page == "flagged":
        assert len(at.get("image")) == 24 and int(_metric(at, "Flagged images").replace(",", "")) > 24
    elif page == "image":
        assert {"Predictions", "Flags", "Statistics", "Review"} <= {s.value for s in at.subheader}
        assert len(at.metric) == 23 + 6 and len(at.get("image")) == 3  # thumbnail, overlay, heatmap
        assert any(c.value.startswith("Camera model (EXIF): **") and "(none)" not in c.value for c in at.caption)
        assert at.metric[0].help is not None and "mu_x = sum p x" in at.metric[0].help
    elif page == "slices":
        # the shortcut camera differs most, first in the bias view; then box plot and mean heatmaps;
        # tag values are markdown-escaped: shown literally
        assert "cam\\-03" in at.warning[0].value and _charts(at) == 3
        assert any(m.value.startswith("**cam\\-03** differs most") for m in at.markdown)
    elif page == "review":
        assert any("unreviewed flagged images in this queue" in m.value for m in at.markdown)
        assert [b.label for b in at.button][:5] == ["Correct flag", "False alarm", "Wrong label", "Unsure", "Skip"]
    elif page == "health":
        assert (_metric(at, "Pending"), _metric(at, "Processing")) == ("18", "2")
        assert len(at.dataframe) == 2  # workers, recent errors
        assert "stopped reporting" in at.warning[0].value  # worker-b's heartbeat is two days old


@pytest.mark.parametrize("page", list(PAGES))
def test_page_explains_what_to_do_on_an_empty_database(page: str, empty: str, open_page: Opener) -> None:
    at = open_page(empty, page)
    assert [t.value for t in at.title] == [TITLES[page]]
    assert any("python -m worker run" in i.value for i in at.info)
    if page == "health":
        assert _metric(at, "Pending") == "0"


def test_gallery_rule_filter_changes_the_results(seeded: str, open_page: Opener) -> None:
    at = open_page(seeded, "flagged")
    everything = int(_metric(at, "Flagged images").replace(",", ""))
    at.selectbox(key="flagged_rule").set_value("border_energy").run()
    border = int(_metric(at, "Flagged images").replace(",", ""))
    expected = _scalar(seeded, select(func.count(func.distinct(Flag.image_id))).where(Flag.rule == "border_energy"))
    assert border == expected < everything
    assert all("border\\_energy" in c.value for c in at.caption if "vs" in c.value)


def test_drift_page_uses_the_slice_drift_results(seeded: str, open_page: Opener) -> None:
    at = open_page(seeded, "drift")
    assert any("Drift tests cover every image." in c.value for c in at.caption)
    at.selectbox(key="drift_slice_tag").set_value("camera").run()
    at.selectbox(key="drift_slice_value").set_value("cam-03").run()
    assert not at.exception
    assert any("Drift tests cover slice camera\\=cam\\-03." in c.value for c in at.caption)


def test_time_range_changes_the_overview(seeded: str, open_page: Opener) -> None:
    at = open_page(seeded, "overview")
    everything = int(_metric(at, "Images processed").replace(",", ""))
    at.selectbox(key="camwatch_time_range").set_value("Last 24 hours").run()
    day = int(_metric(at, "Images processed").replace(",", ""))
    assert 0 < day < everything / 3


def test_review_form_stores_a_review(seeded: str, open_page: Opener) -> None:
    image_id = _flagged_image(seeded)
    before = _scalar(seeded, select(func.count()).select_from(Review).where(Review.image_id == image_id))
    at = open_page(seeded, "image", {"image": str(image_id)})
    at.radio[0].set_value("false_alarm")
    at.text_area[0].input("the watermark, not the person")
    at.text_input[0].input("tester")
    at.button(key="FormSubmitter:review-Save review").click().run()
    assert not at.exception and at.success and "saved" in at.success[0].value
    engine = make_engine(seeded)
    with engine.connect() as conn:
        rows = conn.execute(select(Review.verdict, Review.note, Review.reviewer).where(Review.image_id == image_id)
                            .order_by(Review.id.desc())).all()
    engine.dispose()
    assert len(rows) == before + 1 and tuple(rows[0]) == ("false_alarm", "the watermark, not the person", "tester")
    assert at.dataframe[-2].value["verdict"].iloc[0] == "False alarm"  # the history shows it at once
    trail = at.dataframe[-1].value  # and the audit trail says who (no login: local), not the typed name
    assert (trail["action"].iloc[0], trail["actor"].iloc[0]) == ("reviewed", "local (no login)")
    assert '"verdict": "false_alarm"' in trail["details"].iloc[0]


def test_add_to_reference_inserts_a_member(seeded: str, open_page: Opener) -> None:
    image_id = _flagged_image(seeded)
    at = open_page(seeded, "image", {"image": str(image_id)})
    next(b for b in at.button if b.label.startswith("Add to reference")).click().run()
    assert "rebuilds the reference statistics" in at.success[0].value
    assert _scalar(seeded, select(func.count()).select_from(ReferenceMember)
                   .where(ReferenceMember.image_id == image_id)) == 1
    trail = at.dataframe[-1].value
    assert trail["action"].iloc[0] == "added to the reference" and trail["actor"].iloc[0] == "local (no login)"


def test_unknown_image_id_is_an_error_message(seeded: str, open_page: Opener) -> None:
    at = open_page(seeded, "image", {"image": "99999999"})
    assert "no image with id 99999999" in at.error[0].value


def test_password_gate(seeded: str, open_page: Opener) -> None:
    at = open_page(seeded, "overview", CAMWATCH_DASHBOARD__PASSWORD="hunter2")
    assert [t.value for t in at.title] == ["camwatch"] and not at.metric
    at.text_input[0].input("wrong")
    at.button[0].click().run()
    assert "Wrong password" in at.error[0].value and not at.metric
    at.text_input[0].input("hunter2")
    at.button[0].click().run()
    assert [t.value for t in at.title] == ["Overview"] and at.metric


def test_original_under_a_source_root_and_a_live_heatmap(seeded: str, open_page: Opener, tmp_path: Path,
                                                         photos: dict[str, PILImage.Image]) -> None:
    """An original readable under the source root is shown, and another CAM method runs on it live."""
    root = tmp_path / "photos"
    root.mkdir()
    photo = root / "chelsea.jpg"
    photos["chelsea"].save(photo)
    engine = make_engine(seeded)
    with engine.begin() as conn:
        image_id = conn.execute(select(func.min(Flag.image_id))).scalar_one()
        conn.execute(update(Image).where(Image.id == image_id).values(uri=str(photo)))
    engine.dispose()
    at = open_page(seeded, "image", {"image": str(image_id)}, CAMWATCH_SOURCE=f'["{root}"]')
    assert at.get("image")[0].proto.imgs[0].caption == "original"
    at.selectbox(key="live_method").set_value("cam")
    next(b for b in at.button if b.label == "Compute heatmap").click().run()
    assert not at.exception
    assert any("Agreement with the stored gradcam heatmap: r = " in c.value for c in at.caption)
    assert len(at.get("image")) == 4  # picture, overlay, heatmap, live overlay
