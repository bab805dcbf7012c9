"""Page setup shared by every run: login, sidebar, navigation between the pages in ``app_pages/``."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import streamlit as st

from camwatch.conventions import LOCAL_HOSTS
from dashboard.alerts_ui import banner_text
from dashboard.auth import configured_check, require_login
from dashboard.literal import md
from dashboard.state import clear_cache, config, engine, query
from dashboard.widgets import time_range_selector, version_selector
from db.alerts import firing_alerts
from db.queries import last_processed

LIVE_SECONDS = 10


@st.fragment(run_every=dt.timedelta(seconds=LIVE_SECONDS))
def live_updates() -> None:
    """While "Live" is on, poll for newly processed images and rerun the whole page when some arrived."""
    if not st.session_state.get("live", True):
        return
    latest = last_processed(engine())
    previous = st.session_state.get("live_seen")
    st.session_state["live_seen"] = latest
    if previous is not None and latest != previous:
        clear_cache()
        st.rerun(scope="app")

PAGES_DIR = Path(__file__).resolve().parent / "app_pages"
PAGES = (
    ("overview.py", "Overview", ":material/monitoring:", "overview"),
    ("drift.py", "Drift", ":material/trending_up:", "drift"),
    ("flagged.py", "Flagged", ":material/flag:", "flagged"),
    ("review.py", "Review", ":material/rate_review:", "review"),
    ("image.py", "Image", ":material/image:", "image"),
    ("slices.py", "Slices", ":material/view_column:", "slices"),
    ("compare.py", "Compare", ":material/compare:", "compare"),
    ("health.py", "Health", ":material/favorite:", "health"),
    ("alerts.py", "Alerts", ":material/notifications:", "alerts"),
)


def _exposed(address: str | None) -> bool:
    """Whether ``server.address`` lets other machines connect (unset means every interface)."""
    return address not in LOCAL_HOSTS


def binding_problem(bound: str | None, wanted: str) -> str | None:
    """Why a server bound to ``bound`` (Streamlit's ``server.address``; unset = every interface) must not
    serve when the settings say ``wanted`` (``[dashboard] host``), or None when it may.

    ``streamlit run`` binds before any camwatch code runs, so it cannot honour the settings itself: a
    server that listens more widely than the settings allow refuses to show anything instead."""
    if not _exposed(bound) or bound == wanted or (wanted in ("0.0.0.0", "::") and bound in (None, "")):
        return None
    where = "every network interface" if bound in (None, "", "0.0.0.0", "::") else bound
    return (f"This server listens on {where}, but the settings allow only {wanted} ([dashboard] host). "
            f"Start it with `camwatch dashboard` (binds the settings' host and port), or pass "
            f"`--server.address {wanted}` to `streamlit run`.")


def run() -> None:
    st.set_page_config(page_title="camwatch", page_icon=":material/visibility:", layout="wide")
    settings = config().settings
    served = bool(st.context.headers)  # False under streamlit.testing: no server listens at all
    problem = binding_problem(st.get_option("server.address"), settings.dashboard.host) if served else None
    if problem is not None:
        st.error(problem, icon=":material/lock:")
        return
    if not require_login(settings):
        return
    engine()  # connect and upgrade the schema before any page queries
    pages = [st.Page(PAGES_DIR / file, title=title, icon=icon, url_path=path, default=i == 0)
             for i, (file, title, icon, path) in enumerate(PAGES)]
    navigation = st.navigation(pages)
    if _exposed(st.get_option("server.address")) and not (configured_check(settings) or settings.dashboard.oidc):
        st.sidebar.warning("This server listens on other machines' network and has no login: set "
                           "[dashboard] password_hash (or oidc), or bind 127.0.0.1.", icon=":material/lock_open:")
    st.sidebar.caption(f"Database: {md(engine().url.render_as_string(hide_password=True))}")
    time_range_selector()
    version_selector()
    st.sidebar.toggle("Live", value=True, key="live",
                      help=f"Check for newly processed images every {LIVE_SECONDS} s and update the page")
    live_updates()
    if st.sidebar.button("Refresh", icon=":material/refresh:",
                         help=f"Query the database now (results are otherwise kept "
                              f"{settings.dashboard.cache_ttl_seconds} s)"):
        clear_cache()
    banner = banner_text(query(firing_alerts))
    if banner is not None:
        st.warning(banner, icon=":material/notifications_active:")
    navigation.run()
