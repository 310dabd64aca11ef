"""Fragments that poll, re-checking the session on every rerun.

A fragment rerun (`run_every`, or a button inside it) skips the frame, which is where the
session is checked. A session revoked meanwhile (a disabled account, "log out everywhere", a
new password) must not keep acting through an open tab's fragment, so every rerun of a
`live_fragment` reads the session from the store again first.
"""

from __future__ import annotations

import functools

import streamlit as st

from engine import auth
from ui.connection import db


def session_still_valid() -> bool:
    """Re-read this session's user from the store (their role may have changed too)."""
    user = auth.session_user(db(), st.session_state.get("login_cookie") or None)
    if user is None:
        return False
    st.session_state["user"] = user
    return True


def live_fragment(run_every: float | None = None):
    """st.fragment(run_every=…) that first re-checks the session; once it has ended, the whole
    app reruns and the frame shows the login form."""

    def wrap(fn):
        @st.fragment(run_every=run_every)
        @functools.wraps(fn)
        def checked(*args, **kwargs):
            if not session_still_valid():
                st.session_state.pop("user", None)
                st.rerun(scope="app")
            return fn(*args, **kwargs)

        return checked

    return wrap
