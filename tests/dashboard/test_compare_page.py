"""The Compare page and the model-version selector through streamlit.testing, on two model versions of the
same 200 images (a shadow-mode worker run, :mod:`tests.support.versions`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select
from streamlit.testing.v1 import AppTest

from dashboard.compare import compare_view
from db.models import Heatmap, Prediction
from db.queries import ImageFilter, stat_time_series
from db.session import make_engine
from tests.support import REPO
from tests.support.versions import expected_moved_order, two_versions

APP = str(REPO / "dashboard" / "app.py")


@pytest.fixture(scope="module")
def versions_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = tmp_path_factory.mktemp("versions")
    url = f"sqlite:///{folder / 'camwatch.db'}"
    two_versions(folder, url, 200)
    return url


def _open(url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, page: str | None,
          params: dict[str, str] | None = None) -> AppTest:
    monkeypatch.setenv("CAMWATCH_CONFIG", str(tmp_path / "absent.toml"))
    monkeypatch.setenv("CAMWATCH_DB", url)
    at = AppTest.from_file(APP, default_timeout=90)
    for key, value in (params or {}).items():
        at.query_params[key] = value
    at.run()
    if page is not None:
        at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _classes(url: str, version: int) -> dict[int, int]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return {int(i): int(c) for i, c in conn.execute(select(Prediction.image_id, Prediction.class_index)
                                                            .where(Prediction.model_version_id == version))}
    finally:
        engine.dispose()


def test_compare_page_shows_the_moved_images_first(versions_db: str, monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    expected = expected_moved_order(versions_db)
    assert len(expected) == 200
    at = _open(versions_db, monkeypatch, tmp_path, "app_pages/compare.py", {"a": "1", "b": "2"})
    assert [t.value for t in at.title] == ["Compare"]
    moved = next(d.value for d in at.dataframe if "shift" in d.value.columns)
    assert moved["image_id"].tolist() == expected[:12]
    shifts = moved["shift"].to_numpy()
    assert (np.diff(shifts) <= 1e-4).all() and shifts[0] > shifts[-1]
    captions = [m.value for m in at.markdown if m.value.startswith("**Image ")]
    assert [int(c.split("**")[1].split()[1]) for c in captions] == expected[:12]
    a, b = _classes(versions_db, 1), _classes(versions_db, 2)
    agreement = np.mean([a[i] == b[i] for i in a])
    metric = next(m for m in at.metric if m.label == "Prediction agreement")
    assert metric.value == f"{100 * agreement:.1f} %"
    assert next(m for m in at.metric if m.label == "Images both processed").value == "200"


def test_compare_view_paired_differences_match_an_independent_computation(versions_db: str) -> None:
    from scipy import stats

    engine = make_engine(versions_db)
    try:
        view = compare_view(engine, 1, 2, ImageFilter(), "camera")
        with engine.connect() as conn:
            conf = {v: {int(i): float(c) for i, c in conn.execute(
                select(Prediction.image_id, Prediction.confidence).where(Prediction.model_version_id == v))}
                for v in (1, 2)}
    finally:
        engine.dispose()
    d = np.array([conf[2][i] - conf[1][i] for i in sorted(conf[1])])
    row = view.differences.set_index("statistic").loc["confidence"]
    half = stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
    assert row["n"] == 200 and row["mean_diff"] == pytest.approx(d.mean(), abs=1e-9)
    assert (row["ci_low"], row["ci_high"]) == (pytest.approx(d.mean() - half, abs=1e-9),
                                               pytest.approx(d.mean() + half, abs=1e-9))
    assert sorted(view.slices["slice"]) == ["cam0", "cam1", "cam2", "cam3"]
    assert view.slices["images"].sum() == 200
    assert view.moved["image_id"].tolist() == expected_moved_order(versions_db)


def test_version_selector_defaults_to_the_primary_and_flows_into_the_queries(
        versions_db: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    at = _open(versions_db, monkeypatch, tmp_path, None)
    selector = at.sidebar.selectbox(key="camwatch_model_version")
    assert selector.value == 1  # the newest *primary* version: a shadow model is never the default
    assert at.query_params["version"] == ["1"] or at.query_params["version"] == "1"
    selector.set_value(2).run()
    assert not at.exception
    assert at.session_state["camwatch_model_version"] == 2
    at = _open(versions_db, monkeypatch, tmp_path, None, {"version": "2"})
    assert at.sidebar.selectbox(key="camwatch_model_version").value == 2
    engine = make_engine(versions_db)
    try:  # each version's own heatmaps: the series' mean is that of the version's stored statistic
        for v in (1, 2):
            with engine.connect() as conn:
                expected = conn.execute(select(func.avg(Heatmap.centroid_x)).where(
                    Heatmap.model_version_id == v, Heatmap.is_primary)).scalar_one()
            series = stat_time_series(engine, ["centroid_x"], "day", ImageFilter(model_version_id=v))
            assert int(series["images"].sum()) == 200
            assert series["centroid_x"].iloc[0] == pytest.approx(expected)
        default = stat_time_series(engine, ["centroid_x"], "day", ImageFilter())
        assert default["centroid_x"].iloc[0] == pytest.approx(
            stat_time_series(engine, ["centroid_x"], "day", ImageFilter(model_version_id=1))["centroid_x"].iloc[0])
    finally:
        engine.dispose()
