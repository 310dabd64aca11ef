"""Streamlit glue shared by the pages: the cached store handle and small widgets.

The DuckDB connection is cached once per database path; every script run takes its own cursor
from it (a DuckDB connection is not thread-safe), so tests can point TUNELOOP_HOME elsewhere.
"""

from __future__ import annotations

import os

import streamlit as st

import store
from engine.evaluation import ingest_evaluation
from engine.labelling import ingest_drafts
from engine.paths import db_path
from engine.runs import reattach_all
from engine.sample import load_sample_if_empty
from engine.training import register_if_done
from store import duplicates as dup_store
from store import examples as examples_store


@st.cache_resource(show_spinner="Opening the Tuneloop store…")
def _connection(path: str):
    con = store.connect(path)
    if os.environ.get("TUNELOOP_SAMPLE", "1") != "0":
        load_sample_if_empty(con)
    # Runs that outlived a previous app process: re-attach to live ones, fail dead ones.
    reattach_all(
        con, {"draft": ingest_drafts, "train": register_if_done, "eval": ingest_evaluation}
    )
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


@st.cache_resource(show_spinner="Loading the model…", max_entries=3)
def load_model_cached(path: str, adapter: str | None):
    """Each model is loaded once per process and shared by every session."""
    from engine.generate import load_model

    return load_model(path, adapter)


def model_ui(con, label: str, key: str) -> str:
    """A registered-model picker (the production model first); returns the model id."""
    from engine.registry import ensure_default_model, production_model
    from store import registry as reg_store

    with st.spinner("Preparing the embedded default model (converted once, ~20 s)…"):
        ensure_default_model(con, progress=lambda msg: None)
    ids = reg_store.list_models(con)["id"].tolist()
    production = production_model(con)
    ids.sort(key=lambda i: i != production)
    return st.selectbox(label, ids, key=key)


def generation_ui(prefix: str):
    """Generation settings in an expander; returns GenerationSettings."""
    from engine.generate import GenerationSettings

    with st.expander("Generation settings"):
        c = st.columns(4)
        return GenerationSettings(
            max_new_tokens=c[0].number_input(
                "Max new tokens", 8, 2048, 160, key=f"{prefix}_max_new"
            ),
            temperature=c[1].number_input(
                "Temperature (0 = greedy)", 0.0, 2.0, 0.0, 0.1, key=f"{prefix}_temp"
            ),
            top_p=c[2].number_input("Top-p", 0.05, 1.0, 1.0, 0.05, key=f"{prefix}_top_p"),
            repetition_penalty=c[3].number_input(
                "Repetition penalty", 0.5, 2.0, 1.1, 0.05, key=f"{prefix}_rep"
            ),
        )


def require(action: str):
    """Stop the page for users whose role may not do `action`."""
    from engine.auth import can

    if not can(st.session_state.get("user"), action):
        st.error("Your account cannot do this: ask an admin.")
        st.stop()
