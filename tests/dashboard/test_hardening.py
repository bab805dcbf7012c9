"""The dashboard's defences, without a browser: literal text in markdown and plotly, query parameters,
spreadsheet formulas, login rate limits, session expiry, password hashes, the address a server may listen
on, boxes that cannot be drawn and pictures that cannot be decoded."""

from __future__ import annotations

import csv
import html
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from markdown_it import MarkdownIt
from PIL import Image

from camwatch.csv_safety import neutralise
from camwatch.imaging.render import drawable_box, overlay
from camwatch.passwords import check_hash_format, hash_password, verify_password
from camwatch.settings import DashboardSettings, load_settings
from dashboard.auth import password_matches, session_alive
from dashboard.images import render_overlay
from dashboard.literal import WORD_JOINER, csv_safe_frame, md, plot_text
from dashboard.main import binding_problem
from dashboard.params import MAX_ID, parse_id
from dashboard.ratelimit import GLOBAL_FACTOR, MAX_LOCKOUT_SECONDS, LoginLimiter
from db.queries_images import ImageView

HOSTILE = ["[re-login](https://evil.example/login)", "![beacon](https://evil.example/b.png)",
           "<img src=https://evil.example/x.png>", "<https://evil.example>", "**bold** `code` # heading",
           "line\n\n# heading\n- item", ":red[alarm] $x^2$ :material/home:", "a\\[b](c)", "| a | b |\n|---|---|"]
COMMONMARK = MarkdownIt("commonmark").enable("table")


def _text_of(rendered: str) -> str:
    """The visible text of rendered HTML (tags dropped, entities decoded)."""
    import re

    return html.unescape(re.sub(r"<[^>]+>", "", rendered)).replace(WORD_JOINER, "").strip()


@pytest.mark.parametrize("text", HOSTILE)
def test_markdown_shows_hostile_text_literally(text: str) -> None:
    rendered = COMMONMARK.render(md(text))
    assert "<a " not in rendered and "<img" not in rendered and "<h1" not in rendered and "<code" not in rendered
    assert _text_of(rendered) == " ".join(text.split("\n")).strip()


@given(st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp"), whitelist_characters="\n"), max_size=60))
def test_markdown_escaping_keeps_any_text_as_it_is(text: str) -> None:
    """(Control characters aside: a renderer replaces NUL with U+FFFD, which is not a link either.)"""
    rendered = COMMONMARK.render(md(text))
    assert "<a " not in rendered and "<img" not in rendered and "<em>" not in rendered
    visible = " ".join(text.replace("\r", " ").replace("\n", " ").split())
    assert " ".join(_text_of(rendered).split()) == visible


@given(st.text(max_size=60))
def test_plot_text_is_shown_not_interpreted(text: str) -> None:
    shown = plot_text(text)
    assert "<" not in shown and ">" not in shown and html.unescape(shown) == text


def test_query_parameter_ids() -> None:
    assert [parse_id(v) for v in ("42", "1", str(MAX_ID))] == [42, 1, MAX_ID]
    assert [parse_id(v) for v in ("²", "٣", "0", "-1", "1.5", str(MAX_ID + 1), "9" * 40, "", " 4", None)] == [None] * 10


def test_csv_formulas_are_neutralised_and_numbers_kept() -> None:
    assert [neutralise(v) for v in ("=1+1", "+cmd", "-x", "@SUM(A1)", "\tx", "＝1", "ok", "")] == [
        "'=1+1", "'+cmd", "'-x", "'@SUM(A1)", "'\tx", "'＝1", "ok", ""]
    assert neutralise(-1.5) == -1.5 and neutralise(None) is None
    frame = csv_safe_frame(pd.DataFrame({"label": ['=HYPERLINK("https://evil.example")', "cat"], "score": [-0.5, 2]}))
    rows = list(csv.reader(io.StringIO(frame.to_csv(index=False))))
    assert rows[1] == ["'=HYPERLINK(\"https://evil.example\")", "-0.5"] and rows[2] == ["cat", "2.0"]


def test_login_rate_limit_locks_out_longer_each_time_and_success_clears() -> None:
    now = [0.0]
    gate = LoginLimiter(max_failures=3, lockout_seconds=10, clock=lambda: now[0])
    assert [gate.failed("a") for _ in range(3)] == [0.0, 0.0, 10.0] and gate.retry_after("a") == 10.0
    assert gate.retry_after("b") == 0.0  # another client is not punished
    now[0] = 11.0
    assert gate.retry_after("a") == 0.0 and [gate.failed("a") for _ in range(3)][-1] == 20.0  # doubled
    gate.succeeded("a")
    assert gate.retry_after("a") == 0.0
    spread = LoginLimiter(max_failures=2, lockout_seconds=5, clock=lambda: 0.0)
    for i in range(2 * GLOBAL_FACTOR):  # many addresses, one failure each: the global limit
        spread.failed(f"client-{i}")
    assert spread.retry_after("fresh") == 5.0
    slow = LoginLimiter(max_failures=1, lockout_seconds=1000, clock=lambda: 0.0)
    assert max(slow.failed("x") for _ in range(5)) == MAX_LOCKOUT_SECONDS


def test_sessions_expire_when_idle_and_after_their_maximum_age() -> None:
    d = DashboardSettings(session_idle_minutes=10, session_max_hours=1)
    session = {"at": 0.0, "seen": 0.0}
    assert session_alive(session, d, 500) and session["seen"] == 500  # use keeps it alive
    assert not session_alive(dict(session), d, 500 + 601)  # idle past 10 min
    for t in range(1100, 3600, 500):
        assert session_alive(session, d, t)
    assert not session_alive(session, d, 3601)  # an hour after the login in any case
    assert not session_alive({}, d, 0)


def test_password_hashes() -> None:
    line = hash_password("correct horse", n=2**10)
    assert line.startswith("scrypt$1024$8$1$") and verify_password("correct horse", line)
    assert not verify_password("correct hors", line) and password_matches("correct horse", line, "hash")
    for bad in ("plain", "scrypt$3$8$1$a$b", "scrypt$1024$8$1$!!$b", "pbkdf2_sha256$0$a$b"):
        with pytest.raises(ValueError) as caught:
            check_hash_format(bad)
        assert bad not in str(caught.value) or bad == "plain" and "plain" not in str(caught.value)
    with pytest.raises(ValueError, match="password hash"):
        DashboardSettings(password_hash="not-a-hash")


def test_password_hash_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    line = hash_password("s3cret-pass", n=2**10)
    monkeypatch.setenv("CAMWATCH_DASHBOARD__PASSWORD_HASH", line)
    from dashboard.auth import configured_check

    assert configured_check(load_settings()) == ("hash", line)


@pytest.mark.parametrize(("bound", "wanted", "refused"), [
    (None, "127.0.0.1", True), ("0.0.0.0", "127.0.0.1", True), ("192.168.1.5", "127.0.0.1", True),
    ("127.0.0.1", "127.0.0.1", False), ("localhost", "127.0.0.1", False), ("::1", "0.0.0.0", False),
    ("0.0.0.0", "0.0.0.0", False), (None, "0.0.0.0", False), ("10.0.0.2", "10.0.0.2", False)])
def test_a_server_listening_wider_than_the_settings_refuses(bound: str | None, wanted: str, refused: bool) -> None:
    problem = binding_problem(bound, wanted)
    assert (problem is not None) == refused
    if problem:
        assert f"--server.address {wanted}" in problem and "camwatch dashboard" in problem


boxes = st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**6, 10**6)),
                 min_size=4, max_size=4)


@given(st.lists(boxes, max_size=6), st.one_of(st.none(), boxes), st.integers(1, 400), st.integers(1, 400),
       st.integers(1, 8000), st.integers(1, 8000))
def test_drawing_never_fails_on_any_box(object_boxes, cam_box, width, height, ow, oh) -> None:  # type: ignore[no-untyped-def]
    out = overlay(Image.new("RGB", (width, height)), np.ones((3, 4), np.float32), object_boxes=object_boxes,
                  cam_box=cam_box, original_size=(ow, oh))
    assert out.size == (width, height)


def test_a_tiny_box_on_a_big_image_is_still_drawn() -> None:
    """A 12 px box on a 4000 px image is under one pixel in a 320 px gallery: Pillow raised ValueError."""
    assert drawable_box((1990, 1490, 2002, 1502), 320 / 4000, 240 / 3000, 320, 240) == (159, 119, 160, 120)
    assert drawable_box((50, 50, 10, 10), 1, 1, 100, 100) == (10, 10, 49, 49)  # inverted corners
    assert drawable_box((-50, -50, 500, 500), 1, 1, 100, 100) == (0, 0, 99, 99)  # clamped
    assert drawable_box((200, 200, 300, 300), 1, 1, 100, 100) is None  # outside
    drawn = overlay(Image.new("RGB", (320, 240)), None, object_boxes=[(1990, 1490, 2002, 1502)],
                    original_size=(4000, 3000))
    assert drawn.getpixel((159, 119)) != (0, 0, 0)


def test_a_picture_that_does_not_decode_falls_back_to_the_heatmap() -> None:
    view = ImageView(image_id=1, uri="/nowhere.jpg", width=64, height=48, thumbnail=b"\xff\xd8\xff garbage",
                     object_boxes=[[1, 1, 2, 2]], native=np.ones((4, 4), np.float32), extent=[0, 0, 1, 1],
                     cam_box=None, state="ok")
    picture = render_overlay(view, [], side=320, prefer_original=False)
    assert picture.source == "heatmap only"
