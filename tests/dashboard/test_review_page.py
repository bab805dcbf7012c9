"""The Review page through streamlit.testing's AppTest, on a hand-made database with known flag values:
working through the queue, two reviewers at once, precision and the suggested threshold after known
verdicts, accepting it, a wrong-label verdict changing accuracy, the Image page opening on the newest
flagged image."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from camwatch.monitoring.review import wilson_interval
from db.audit import audit_events
from db.models import Review
from db.reviews import threshold_overrides
from db.session import make_engine
from tests.support import REPO
from tests.support.databases import migrated_engine
from tests.support.qa import seed_images

APP = str(REPO / "dashboard" / "app.py")
# ids 1..20 flagged by energy_outside with value 0.50 + 0.01 id (threshold 0.5), ids 21..24 not flagged;
# image id i predicts class (i - 1) % 3 and is labelled with it (every prediction correct)
N = 24
VALUES = [0.51 + 0.01 * k for k in range(20)] + [None] * 4


@pytest.fixture()
def url(tmp_path: Path) -> Iterator[str]:
    with migrated_engine("sqlite", tmp_path) as engine:
        seed_images(engine, N, flag_values=VALUES)
        yield engine.url.render_as_string(hide_password=False)


@pytest.fixture()
def open_page(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[..., AppTest]:
    monkeypatch.setenv("CAMWATCH_CONFIG", str(tmp_path / "absent.toml"))

    def opener(url: str, page: str = "app_pages/review.py") -> AppTest:
        monkeypatch.setenv("CAMWATCH_DB", url)
        at = AppTest.from_file(APP, default_timeout=60)
        at.run()
        at.switch_page(page).run()
        assert not at.exception, [e.value for e in at.exception]
        return at

    return opener


def _current(at: AppTest) -> int:
    return int(at.session_state["review_current"])


def _verdict(at: AppTest, key: str) -> None:
    at.button(key=f"verdict_{key}").click().run()
    assert not at.exception, [e.value for e in at.exception]


def _reviews(url: str) -> list[tuple[int, str, str | None]]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(select(Review.image_id, Review.verdict, Review.label)
                                                   .order_by(Review.id))]  # type: ignore[misc]
    finally:
        engine.dispose()


def _precision_row(at: AppTest) -> dict[str, object]:
    table = next(d.value for d in at.dataframe if "precision" in d.value.columns)
    return table[table["rule"] == "energy_outside"].iloc[0].to_dict()


def test_a_reviewer_works_through_ten_images_most_severe_first(url: str, open_page: Callable[..., AppTest]) -> None:
    at = open_page(url)
    seen = []
    for i in range(10):
        image_id = _current(at)
        seen.append(image_id)
        _verdict(at, "wrong_attention_confirmed" if image_id >= 16 else "false_alarm")
        assert f"{i + 1} reviewed in this session" in at.markdown[0].value
    assert seen == list(range(20, 10, -1))  # value 0.70 down to 0.61: severity order
    assert [(i, v) for i, v, _ in _reviews(url)] == [(i, "wrong_attention_confirmed" if i >= 16 else "false_alarm")
                                                     for i in seen]
    assert "**10** unreviewed flagged images in this queue" in at.markdown[0].value
    assert _current(at) == 10


def test_two_reviewers_never_get_the_same_image(url: str, open_page: Callable[..., AppTest]) -> None:
    ana, ben = open_page(url), open_page(url)
    ana.run()  # ana still holds the image she was shown
    assert (_current(ana), _current(ben)) == (20, 19)
    for _ in range(3):
        _verdict(ana, "false_alarm")
        _verdict(ben, "unsure")
        ana.run()
        assert _current(ana) != _current(ben)
    reviewed = [i for i, _, _ in _reviews(url)]
    assert len(reviewed) == len(set(reviewed)) == 6  # no image reviewed twice


def test_precision_and_suggested_threshold_follow_the_verdicts(url: str, open_page: Callable[..., AppTest]) -> None:
    at = open_page(url)
    for _ in range(5):  # ids 20..16 (values 0.70..0.66): the flag was right
        _verdict(at, "wrong_attention_confirmed")
    row = _precision_row(at)
    assert (row["reviewed"], row["confirmed"], row["precision"]) == (5, 5, 1.0)
    assert pd.isna(row["suggested"])  # 5 counted reviews are too few for a suggestion
    for _ in range(5):  # ids 15..11 (values 0.65..0.61): false alarms
        _verdict(at, "false_alarm")
    row = _precision_row(at)
    low, high = wilson_interval(5, 10)  # type: ignore[misc]
    assert (row["reviewed"], row["false_alarms"], row["precision"]) == (10, 5, 0.5)
    assert (row["low"], row["high"]) == pytest.approx((low, high))
    assert row["threshold"] == 0.5 and row["suggested"] == 0.655  # between 0.65 and 0.66
    assert row["precision at suggested"] == 1.0
    assert any("0.655" in m.value and "(now 0.5)" in m.value for m in at.markdown)
    at.button(key="accept_energy_outside").click().run()  # no login configured: the local user is an admin
    assert not at.exception and "accepted" in at.success[0].value
    row = _precision_row(at)
    # now in force; only the 5 confirmed flags lie beyond it: too few counted reviews for a new suggestion
    assert row["threshold"] == 0.655 and pd.isna(row["suggested"])
    engine = make_engine(url)
    overrides, events = threshold_overrides(engine), audit_events(engine, 20, "threshold.")
    engine.dispose()
    assert overrides["energy_outside"].value == 0.655 and overrides["energy_outside"].previous == 0.5
    assert events["action"].tolist() == ["threshold.accept"]
    assert events["detail"].iloc[0]["confirmed"] == 5 and events["detail"].iloc[0]["false_alarms"] == 0


def test_a_wrong_label_verdict_changes_accuracy(url: str, open_page: Callable[..., AppTest]) -> None:
    overview = open_page(url, "app_pages/overview.py")
    assert any("images with a known label: **100.0 %**" in c.value for c in overview.caption)
    at = open_page(url)
    assert _current(at) == 20  # predicted class (20 - 1) % 3 = 1 (dog), labelled dog
    _verdict(at, "wrong_label")  # no right label chosen yet: refused, nothing stored
    assert "Choose the right label first" in at.error[0].value and _reviews(url) == []
    at.selectbox(key="review_label").set_value(2)
    _verdict(at, "wrong_label")
    assert _reviews(url) == [(20, "wrong_label", "bird")]
    overview = open_page(url, "app_pages/overview.py")
    assert any(f"**{N:,}** images with a known label: **{100 * (N - 1) / N:.1f} %**" in c.value
               for c in overview.caption)


def test_the_image_page_opens_on_the_newest_flagged_image(url: str, open_page: Callable[..., AppTest]) -> None:
    at = open_page(url, "app_pages/image.py")
    assert at.number_input(key="image_id").value == 20 and at.query_params["image"] in ("20", ["20"])
    assert any("newest flagged image" in c.value for c in at.caption)
