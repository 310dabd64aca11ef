"""Runs from the app's side: create a run folder, start its worker, and ingest what it wrote.

The worker (engine/jobs.py) only touches files; `refresh_run` is where the app reads them into
the store: new events, the final state, and (for drafting runs) the drafts. It is cheap to call
on every poll and safe to call twice. After an app restart, refreshing every unfinished run
re-attaches to live workers and marks dead ones failed with the tail of their log.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

from engine import jobs
from engine.paths import data_dir
from store import runs as runs_store
from store import transaction


def runs_dir() -> Path:
    path = data_dir() / "runs"
    path.mkdir(exist_ok=True)
    return path


def new_run(con, kind: str, config: dict, user: str | None = None) -> tuple[str, Path]:
    """Make a run folder with its config.json and record the run; returns (id, folder)."""
    run_id = f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    run_dir = runs_dir() / run_id
    run_dir.mkdir()
    jobs.write_json(run_dir / "config.json", config)
    runs_store.add_run(con, run_id, kind, str(run_dir), config, user)
    return run_id, run_dir


def launch(con, run_id: str, args: list[str], launcher: list[str] | None = None):
    run = runs_store.get_run(con, run_id)
    jobs.start_worker(run["run_dir"], args, launcher=launcher)
    runs_store.set_state(con, run_id, "running")


def refresh_run(con, run_id: str, ingest=None) -> jobs.RunState:
    """Ingest new events (and results through `ingest(con, run)`) and the state of a run."""
    run = runs_store.get_run(con, run_id)
    if run["state"] in jobs.FINAL:
        return jobs.RunState(run["state"], run["reason"], None)
    state = (
        jobs.poll(run["run_dir"])
        if run["state"] != "queued"
        else jobs.RunState("queued", None, None)
    )
    events, offset = jobs.read_events(run["run_dir"], int(run["events_offset"]))
    with transaction(con):
        runs_store.add_events(con, run_id, events, offset)
        if ingest:
            ingest(con, run)
        if state.state != run["state"]:
            runs_store.set_state(con, run_id, state.state, state.reason)
    return state


def reattach_all(con, ingest_by_kind: dict | None = None):
    """On app start: bring every unfinished run up to date (live ones keep running)."""
    for run_id, kind in runs_store.list_runs(con, states=("running",))[["id", "kind"]].values:
        refresh_run(con, run_id, (ingest_by_kind or {}).get(kind))


def cancel_run(con, run_id: str):
    run = runs_store.get_run(con, run_id)
    jobs.request_cancel(run["run_dir"])


def read_config(run: dict) -> dict:
    return json.loads(run["config"])
