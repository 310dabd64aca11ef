"""Streamlit glue shared by the pages: the store handle (ui/connection.py), the sidebar status
and small widgets."""

from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

from engine import auth
from engine.paths import db_path
from store import duplicates as dup_store
from store import examples as examples_store
from ui.connection import db, permission_notices, poller
from ui.jobs import sidebar_jobs_ui


def sidebar_status():
    con = db()
    with st.sidebar:
        n = examples_store.count_examples(con)
        clusters, _ = dup_store.count_clusters(con)
        st.caption(f"{n:,} examples · {clusters:,} duplicate clusters")
        if auth.can(st.session_state.get("user"), "users"):  # server paths: admins only
            st.caption(f"Data folder: `{db_path().parent}`")
            for line in permission_notices.pop(str(db_path()), []):
                st.warning(line)
    sidebar_jobs_ui(db, poller)


def progress_ui(label: str):
    """A progress bar and the callback (done, total) that moves it."""
    bar = st.progress(0.0, text=label)

    def update(done, total):
        if total:
            bar.progress(min(1.0, done / total), text=f"{label} {done:,} / {total:,}")

    return update


@st.cache_resource(show_spinner="Loading the model…", max_entries=3)
def load_model_cached(path: str, adapter: str | None):
    """Each model is loaded once per process and shared by every session."""
    from engine.models.generation import load_model

    return load_model(path, adapter)


def model_ui(con, label: str, key: str) -> str:
    """A registered-model picker (the production model first); returns the model id."""
    from engine.models.registry import ensure_default_model, production_model
    from store import registry as reg_store

    with st.spinner("Preparing the embedded default model (converted once, ~20 s)…"):
        ensure_default_model(con, progress=lambda msg: None)
    ids = reg_store.list_models(con)["id"].tolist()
    production = production_model(con)
    ids.sort(key=lambda i: i != production)
    return st.selectbox(label, ids, key=key)


def generation_ui(prefix: str, defaults=None):
    """Generation settings in an expander, starting at `defaults` (a GenerationSettings; the
    drafting defaults when None); returns GenerationSettings."""
    from engine.models.generation import GenerationSettings

    d = defaults or GenerationSettings(max_new_tokens=160, repetition_penalty=1.1)
    with st.expander("Generation settings"):
        c = st.columns(4)
        return GenerationSettings(
            max_new_tokens=c[0].number_input(
                "Max new tokens", 8, 2048, d.max_new_tokens, key=f"{prefix}_max_new"
            ),
            temperature=c[1].number_input(
                "Temperature (0 = greedy)", 0.0, 2.0, d.temperature, 0.1, key=f"{prefix}_temp"
            ),
            top_p=c[2].number_input("Top-p", 0.05, 1.0, d.top_p, 0.05, key=f"{prefix}_top_p"),
            repetition_penalty=c[3].number_input(
                "Repetition penalty", 0.5, 2.0, d.repetition_penalty, 0.05, key=f"{prefix}_rep"
            ),
        )


def require(action: str):
    """Stop the page for users whose role may not do `action` (and for nobody signed in).
    The frame's gate already keeps such pages out of reach; this is the page's own check."""
    from engine.auth import can

    _run_inside_the_frame()
    user = st.session_state.get("user")
    if not can(user, action):
        st.error("Please log in." if user is None else "Your account cannot do this: ask an admin.")
        st.stop()


def require_login():
    """Stop the page unless someone is signed in (every page's first statement)."""
    require("login")


def _run_inside_the_frame():
    """Until st.navigation has run once in this process, Streamlit runs a file under pages/ by
    itself, without streamlit_app.py and its gate (the first request after a start may ask for
    /curate; AppTest does it on every run). Then run the frame here instead (its navigation
    resolves the same URL path, so this page runs inside it, or the login form does) and stop.
    PagesManager's flag is Streamlit's own: st.navigation clears it the same way. Whether this
    run is inside the frame is asked of this run's call stack, not of that process-wide flag:
    after a restart every open tab reconnects at once, and the runs that start before the
    first one clears the flag are bare page files too (tests/test_journeys.py found one)."""
    import runpy
    import sys

    from streamlit.runtime.pages_manager import PagesManager

    frame = os.path.realpath(Path(__file__).parents[1] / "streamlit_app.py")
    caller = sys._getframe(1)
    while caller is not None:
        if os.path.realpath(caller.f_code.co_filename) == frame:
            return
        caller = caller.f_back
    PagesManager.uses_pages_directory = False
    runpy.run_path(frame, run_name="__main__")
    st.stop()
