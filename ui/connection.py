"""The app's one handle on its store, per database path and process.

The DuckDB connection is opened once per database path and process (a module-level registry,
not st.cache_resource: clearing a cache must never open a second connection or start a second
background poller); every script run takes its own cursor from it (a DuckDB connection is not
thread-safe), so tests can point TUNELOOP_HOME elsewhere. Opening it makes the data folder
private to its owner first.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import streamlit as st

import store
from engine.data.samples import load_sample_if_empty
from engine.paths import db_path, secure_data_dir
from engine.scheduler import Poller

_connections: dict[str, object] = {}
_pollers: dict[str, Poller] = {}
_open_lock = threading.Lock()
permission_notices: dict[str, list[str]] = {}


def _connection(path: str):
    with _open_lock:
        if path in _connections:
            return _connections[path]
        permission_notices[path] = secure_data_dir(Path(path).parent)
        for line in permission_notices[path]:
            print(f"  Tuneloop: {line}", flush=True)
        try:
            con = store.connect(path)
        except store.StoreUnavailable as e:
            print(f"  Tuneloop: {e}", flush=True)  # the console is the owner's; pages are not
            st.error(
                "Tuneloop cannot open its data store right now. The person who runs it has "
                "been told why on its console."
            )
            st.stop()
        if os.environ.get("TUNELOOP_SAMPLE", "1") != "0":
            load_sample_if_empty(con)
        # The background poller ingests every run (re-attaching to runs that outlived a previous
        # app process, failing dead ones) and starts queued ones, whether or not a page is open.
        _pollers[path] = Poller(con).start()
        _connections[path] = con
        return con


def poller() -> Poller:
    """The app's background poller (see engine/scheduler.py): one per process and store."""
    _connection(str(db_path()))
    return _pollers[str(db_path())]


def db():
    """A cursor on the app's database for this script run."""
    return _connection(str(db_path())).cursor()
