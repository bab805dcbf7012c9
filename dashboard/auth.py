"""Optional login in front of every page.

- ``settings.dashboard.oidc = true``: OpenID Connect through ``st.login`` (provider configured in
  ``.streamlit/secrets.toml`` under ``[auth]``, see Streamlit's documentation); a logged-in user's name
  is the default reviewer name.
- otherwise, a shared password when one is configured: ``settings.dashboard.password``
  (``CAMWATCH_DASHBOARD__PASSWORD``) or ``dashboard_password`` in ``.streamlit/secrets.toml``; compared
  with :func:`hmac.compare_digest` (constant time). Successful logins last for the browser session.
- neither: no login (the default, meant for a dashboard bound to 127.0.0.1).
"""

from __future__ import annotations

import hmac
import logging

import streamlit as st

from camwatch.settings import Settings

log = logging.getLogger(__name__)

SECRET_KEY = "dashboard_password"
_SESSION_KEY = "camwatch_authenticated"


def configured_password(settings: Settings) -> str | None:
    """The shared password from the settings, else from Streamlit's secrets, else None."""
    if settings.dashboard.password:
        return settings.dashboard.password
    try:
        secret = st.secrets.get(SECRET_KEY)
    except FileNotFoundError:  # no secrets.toml at all: no password configured there
        return None
    return str(secret) if secret else None


def password_matches(entered: str, expected: str) -> bool:
    return hmac.compare_digest(entered.encode("utf-8"), expected.encode("utf-8"))


def require_login(settings: Settings) -> bool:
    """True when the visitor may see the dashboard; otherwise draws the login form and returns False."""
    if settings.dashboard.oidc:
        if not st.user.get("is_logged_in"):
            st.title("camwatch")
            st.button("Log in", on_click=st.login, type="primary")
            return False
        st.sidebar.caption(f"Logged in as {st.user.get('name') or st.user.get('email')}")
        st.sidebar.button("Log out", on_click=st.logout)
        return True
    expected = configured_password(settings)
    if expected is None or st.session_state.get(_SESSION_KEY):
        return True
    st.title("camwatch")
    with st.form("login"):
        entered = st.text_input("Password", type="password")
        submitted = st.form_submit_button("Log in", type="primary")
    if submitted:
        if password_matches(entered, expected):
            st.session_state[_SESSION_KEY] = True
            st.rerun()
        log.warning("dashboard: failed login attempt")
        st.error("Wrong password.")
    return False


def user_name(settings: Settings) -> str:
    """The OIDC user's name when logged in that way, else an empty string (``st.user`` has no login state
    unless OIDC is configured)."""
    if settings.dashboard.oidc and st.user.get("is_logged_in"):
        return str(st.user.get("name") or st.user.get("email") or "")
    return ""
