"""Who is reviewing, and who may accept a threshold.

- **Reviewer identity**: the OIDC user's name when the dashboard uses ``st.login``; otherwise a name kept
  for the browser session, typed once on the Review page (prefilled with a generated ``reviewer-xxxx`` so
  two anonymous sessions never look like one person). Every session also gets a random claim token
  (:func:`holder`): claims belong to the session, so two people typing the same name still never get the
  same image.
- **Admin**: with no login configured (a dashboard on 127.0.0.1) the local user is the admin; with a login,
  the OIDC users listed in ``[dashboard] admins`` (name or e-mail), or anyone who entered
  ``[dashboard] admin_password`` in this session (compared in constant time).
"""

from __future__ import annotations

import hmac
import logging
import uuid

import streamlit as st

from camwatch.settings import Settings
from dashboard.auth import configured_password, user_name

log = logging.getLogger(__name__)

_HOLDER = "camwatch_review_holder"
_NAME = "camwatch_reviewer"
_ADMIN = "camwatch_admin"


def holder() -> str:
    """This browser session's claim token."""
    if _HOLDER not in st.session_state:
        st.session_state[_HOLDER] = uuid.uuid4().hex
    token: str = st.session_state[_HOLDER]
    return token


def logged_in_name(settings: Settings) -> str:
    """The login's user name, or an empty string without an individual login."""
    return user_name(settings)


def session_name() -> str:
    """The name this session reviews under when there is no individual login."""
    if _NAME not in st.session_state:
        st.session_state[_NAME] = f"reviewer-{holder()[:4]}"
    name: str = st.session_state[_NAME]
    return name


def reviewer_widget(settings: Settings) -> str:
    """The reviewer's name: the login's, or a text box kept for the session."""
    login = logged_in_name(settings)
    if login:
        st.caption(f"Reviewing as **{login}** (your login).")
        return login
    session_name()  # initialises the widget's state
    name = st.text_input("Your name", key=_NAME, max_chars=200,
                         help="Kept for this browser session and stored with every verdict")
    return name.strip() or session_name()


def login_configured(settings: Settings) -> bool:
    return bool(settings.dashboard.oidc or configured_password(settings))


def is_admin(settings: Settings) -> bool:
    """Whether this session may accept thresholds (module docstring)."""
    if not login_configured(settings):
        return True
    if st.session_state.get(_ADMIN):
        return True
    login = logged_in_name(settings)
    if settings.dashboard.oidc and st.user.get("is_logged_in"):
        identities = {login, str(st.user.get("email") or "")} - {""}
        return bool(identities & set(settings.dashboard.admins))
    return False


def admin_unlock(settings: Settings) -> None:
    """A password box that makes this session an admin (only when an admin password is configured)."""
    expected = settings.dashboard.admin_password
    if not expected or is_admin(settings):
        return
    entered = st.text_input("Admin password", type="password", key="camwatch_admin_password",
                            help="Accepting a threshold needs an admin")
    if entered:
        if hmac.compare_digest(entered.encode("utf-8"), expected.encode("utf-8")):
            st.session_state[_ADMIN] = True
            st.rerun()
        log.warning("dashboard: wrong admin password")
        st.error("Wrong admin password.")
