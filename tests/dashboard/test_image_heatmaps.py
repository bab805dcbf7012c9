"""The Image page shows every stored heatmap of an image: the primary one (statistics, flags, drift) and the
maps of other target classes (``--target both``: the known label's)."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, insert, select
from streamlit.testing.v1 import AppTest

from db.models import Heatmap, Image
from db.session import make_engine
from demo.synthetic.fill import fill_database
from tests.support import REPO

APP = str(REPO / "dashboard" / "app.py")


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, int, int]:
    """A small synthetic database where one image has a second heatmap, of another class."""
    url = f"sqlite:///{tmp_path_factory.mktemp('maps') / 'camwatch.db'}"
    fill_database(url, 150, seed=5, start=dt.datetime.now(dt.UTC) - dt.timedelta(days=2), days=2, cameras=2,
                  reference_size=40, pending=0)
    engine = make_engine(url)
    with engine.begin() as conn:
        image_id = conn.execute(select(func.min(Heatmap.image_id)).join(Image, Image.id == Heatmap.image_id)
                                .where(Image.thumbnail.is_not(None))).scalar_one()  # it has a picture
        primary = conn.execute(select(Heatmap).where(Heatmap.image_id == image_id)).mappings().one()
        other_class = (primary["target_class"] + 1) % 5
        row = {k: v for k, v in primary.items() if k != "id"} | {"target_class": other_class, "is_primary": False,
                                                                   "energy_outside": 0.875}
        conn.execute(insert(Heatmap).values(**row))
    engine.dispose()
    return url, image_id, other_class


def _open(url: str, image_id: int, monkeypatch: pytest.MonkeyPatch, tmp_path) -> AppTest:
    monkeypatch.setenv("CAMWATCH_CONFIG", str(tmp_path / "absent.toml"))
    monkeypatch.setenv("CAMWATCH_DB", url)
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["image"] = str(image_id)
    at.run()
    at.switch_page("app_pages/image.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_image_page_shows_every_stored_heatmap(database, monkeypatch, tmp_path):
    url, image_id, other_class = database
    at = _open(url, image_id, monkeypatch, tmp_path)
    assert "Stored heatmaps" in [h.value for h in at.subheader]
    captions = [img.caption for element in at.get("image") for img in element.proto.imgs]
    assert len(at.get("image")) == 5  # picture, overlay, heatmap, then the two stored maps
    assert sum("(primary)" in c for c in captions) == 1
    assert any(f"for class {other_class}" in c and "(also stored)" in c for c in captions)
    assert any("energy outside 0.875" in c.value for c in at.caption)


def test_image_with_one_heatmap_has_no_extra_section(database, monkeypatch, tmp_path):
    url, image_id, _ = database
    engine = make_engine(url)
    with engine.connect() as conn:
        other = conn.execute(select(func.min(Heatmap.image_id)).join(Image, Image.id == Heatmap.image_id)
                             .where(Image.thumbnail.is_not(None), Heatmap.image_id != image_id)).scalar_one()
    engine.dispose()
    at = _open(url, other, monkeypatch, tmp_path)
    assert "Stored heatmaps" not in [h.value for h in at.subheader]
    assert len(at.get("image")) == 3
