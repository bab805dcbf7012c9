"""Optional login in front of every page, sessions that end, and who the user is for the audit trail.

- ``settings.dashboard.oidc = true``: OpenID Connect through ``st.login`` (provider configured in
  ``.streamlit/secrets.toml`` under ``[auth]``, see Streamlit's documentation); a logged-in user's name
  is the default reviewer name and the audit trail records their e-mail (or name).
- otherwise, a shared password when one is configured, preferably as a hash
  (``settings.dashboard.password_hash``, ``camwatch hash-password`` prints one; or
  ``dashboard_password_hash`` in ``.streamlit/secrets.toml``), else in clear
  (``settings.dashboard.password`` / ``dashboard_password``), compared in constant time. Failed attempts
  are rate-limited per client (:mod:`dashboard.ratelimit`).
- neither: no login (the default, meant for a dashboard bound to 127.0.0.1).

Sessions expire: after ``session_idle_minutes`` without a page run, and ``session_max_hours`` after the
login in any case (OIDC: after the identity token's ``iat`` when the provider sends one); the next page
run asks to log in again.
"""

from __future__ import annotations

import hmac
import logging
import time

import streamlit as st

from camwatch.conventions import LOCAL_ACTOR, PASSWORD_ACTOR
from camwatch.passwords import verify_password
from camwatch.settings import DashboardSettings, Settings
from dashboard.ratelimit import LoginLimiter

log = logging.getLogger(__name__)

SECRET_KEY = "dashboard_password"
SECRET_HASH_KEY = "dashboard_password_hash"
_SESSION_KEY = "camwatch_session"
_EXPIRED_KEY = "camwatch_session_expired"


def _secret(key: str) -> str | None:
    try:
        value = st.secrets.get(key)
    except FileNotFoundError:  # no secrets.toml at all: nothing configured there
        return None
    return str(value) if value else None


def configured_check(settings: Settings) -> tuple[str, str] | None:
    """``("hash", line)`` or ``("clear", password)`` from the settings, else from Streamlit's secrets;
    None when no password is configured."""
    d = settings.dashboard
    for kind, value in (("hash", d.password_hash), ("clear", d.password), ("hash", _secret(SECRET_HASH_KEY)),
                        ("clear", _secret(SECRET_KEY))):
        if value:
            return kind, value
    return None


def configured_password(settings: Settings) -> str | None:
    """The clear-text shared password, if that is how it is configured (kept for callers of earlier versions)."""
    check = configured_check(settings)
    return check[1] if check is not None and check[0] == "clear" else None


def password_matches(entered: str, expected: str, kind: str = "clear") -> bool:
    if kind == "hash":
        return verify_password(entered, expected)
    return hmac.compare_digest(entered.encode("utf-8"), expected.encode("utf-8"))


@st.cache_resource
def _limiter(max_failures: int, lockout_seconds: float) -> LoginLimiter:
    return LoginLimiter(max_failures, lockout_seconds)


def limiter(d: DashboardSettings) -> LoginLimiter:
    """The process-wide limiter for these settings."""
    return _limiter(d.login_max_failures, d.login_lockout_seconds)


def client_address() -> str:
    """The requesting client's address, or ``"unknown"``."""
    try:
        return str(st.context.ip_address or "unknown")
    except Exception:  # no request context (tests, scripts)
        return "unknown"


def session_alive(state: dict, d: DashboardSettings, now: float) -> bool:
    """Whether the login recorded in ``state`` (``at``, ``seen``: seconds) is still valid at ``now``;
    refreshes ``seen`` when it is."""
    at, seen = state.get("at"), state.get("seen")
    if at is None or seen is None:
        return False
    if now - seen > d.session_idle_minutes * 60 or now - at > d.session_max_hours * 3600:
        return False
    state["seen"] = now
    return True


def _oidc_login(d: DashboardSettings) -> bool:
    if not st.user.get("is_logged_in"):
        st.title("camwatch")
        st.button("Log in", on_click=st.login, type="primary")
        return False
    now = time.time()
    session = st.session_state.setdefault(_SESSION_KEY, {"at": now, "seen": now})
    issued = st.user.get("iat")
    too_old = isinstance(issued, int | float) and now - float(issued) > d.session_max_hours * 3600
    if too_old or not session_alive(session, d, now):
        st.session_state.pop(_SESSION_KEY, None)
        log.info("dashboard: an OIDC session expired")
        st.logout()
        return False
    st.sidebar.caption("Logged in as " + " ".join(str(st.user.get("name") or st.user.get("email") or "").split()))
    st.sidebar.button("Log out", on_click=st.logout)
    return True


def require_login(settings: Settings) -> bool:
    """True when the visitor may see the dashboard; otherwise draws the login form and returns False."""
    d = settings.dashboard
    if d.oidc:
        return _oidc_login(d)
    check = configured_check(settings)
    if check is None:
        return True
    now = time.time()
    session = st.session_state.get(_SESSION_KEY)
    if session is not None:
        if session_alive(session, d, now):
            return True
        st.session_state.pop(_SESSION_KEY, None)
        st.session_state[_EXPIRED_KEY] = True
    st.title("camwatch")
    if st.session_state.get(_EXPIRED_KEY):
        st.info("Your session expired. Log in again.")
    client = client_address()
    gate = limiter(d)
    with st.form("login"):
        entered = st.text_input("Password", type="password")
        submitted = st.form_submit_button("Log in", type="primary")
    if submitted:
        wait = gate.retry_after(client)
        if wait > 0:
            st.error(f"Too many failed attempts. Try again in {wait:.0f} s.")
            return False
        if password_matches(entered, check[1], check[0]):
            gate.succeeded(client)
            st.session_state[_SESSION_KEY] = {"at": now, "seen": now}
            st.session_state.pop(_EXPIRED_KEY, None)
            st.rerun()
        locked = gate.failed(client)
        log.warning("dashboard: failed login attempt from %s%s", client,
                    f"; locked out for {locked:.0f} s" if locked else "")
        st.error("Wrong password." + (f" Too many failed attempts: try again in {locked:.0f} s." if locked else ""))
    return False


def user_name(settings: Settings) -> str:
    """The OIDC user's name when logged in that way, else an empty string (``st.user`` has no login state
    unless OIDC is configured)."""
    if settings.dashboard.oidc and st.user.get("is_logged_in"):
        return str(st.user.get("name") or st.user.get("email") or "")
    return ""


def actor(settings: Settings) -> tuple[str, str]:
    """``(who, client address)`` for the audit trail: the OIDC identity (e-mail, else name), the shared
    password's :data:`~camwatch.conventions.PASSWORD_ACTOR`, or :data:`~camwatch.conventions.LOCAL_ACTOR`."""
    if settings.dashboard.oidc and st.user.get("is_logged_in"):
        who = str(st.user.get("email") or st.user.get("name") or "oidc user")
    elif configured_check(settings) is not None:
        who = PASSWORD_ACTOR
    else:
        who = LOCAL_ACTOR
    return who, client_address()

