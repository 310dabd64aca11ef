"""Streamlit glue shared by the pages: the cached store handle and small widgets.

The DuckDB connection is cached once per database path; every script run takes its own cursor
from it (a DuckDB connection is not thread-safe), so tests can point TUNELOOP_HOME elsewhere.
"""

from __future__ import annotations

import os

import streamlit as st

import store
from engine.paths import db_path
from engine.sample import load_sample_if_empty
from store import duplicates as dup_store
from store import examples as examples_store


@st.cache_resource(show_spinner="Opening the Tuneloop store…")
def _connection(path: str):
    con = store.connect(path)
    if os.environ.get("TUNELOOP_SAMPLE", "1") != "0":
        load_sample_if_empty(con)
    return con


def db():
    """A cursor on the app's database for this script run."""
    return _connection(str(db_path())).cursor()


def sidebar_status():
    con = db()
    with st.sidebar:
        n = examples_store.count_examples(con)
        clusters, _ = dup_store.count_clusters(con)
        st.caption(f"{n:,} examples · {clusters:,} duplicate clusters")
        st.caption(f"Data folder: `{db_path().parent}`")


def progress_ui(label: str):
    """A progress bar and the callback (done, total) that moves it."""
    bar = st.progress(0.0, text=label)

    def update(done, total):
        if total:
            bar.progress(min(1.0, done / total), text=f"{label} {done:,} / {total:,}")

    return update
