"""Runs from the app's side: create a run folder, queue it, start its worker when a slot is
free, and ingest what it wrote.

Every heavy job (drafting, training, evaluation) goes through one queue: `new_run` records the
run as queued with the worker command it needs, and `pump` starts the oldest queued runs while
fewer than `slots()` run (one on a CPU, where two jobs would only thrash the same cores;
`TUNELOOP_GPU_SLOTS`, default 1, on a GPU). The worker (engine/jobs/runfolder.py) only touches
files;
`refresh_run` is where the app reads them into the store: new events (from the byte offset it
reached last time), the final state, and the results through the stage's ingest function. It is
cheap to call on every poll and safe to call twice. engine/scheduler.py does all of this for
every run in the background, so nothing depends on a page being open.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from functools import cache
from pathlib import Path

from engine.jobs import runfolder
from engine.paths import data_dir
from store import runs as runs_store
from store import transaction

HEAVY = ("draft", "train", "eval")  # kinds that share the queue
_queue_lock = threading.RLock()  # the app serves many sessions: one pump at a time


def runs_dir() -> Path:
    path = data_dir() / "runs"
    path.mkdir(exist_ok=True)
    return path


@cache
def slots() -> int:
    """How many heavy jobs may run at once on this machine."""
    import torch

    if torch.cuda.is_available():
        return max(1, int(os.environ.get("TUNELOOP_GPU_SLOTS", "1")))
    return 1


def new_run(
    con,
    kind: str,
    config: dict,
    user: str | None = None,
    args: list[str] | None = None,
    launcher: list[str] | None = None,
) -> tuple[str, Path]:
    """Make a run folder with its config.json and record the run as queued, with the worker
    command (`python -m engine ARGS`, under `launcher` when given) that `pump` will start.
    Returns (id, folder). Call it inside `with preparing():`, write the run's inputs, then
    call `pump`."""
    run_id = f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    run_dir = runs_dir() / run_id
    run_dir.mkdir()
    runfolder.write_json(run_dir / "config.json", config)
    worker = {"args": [a.replace("{run_dir}", str(run_dir)) for a in (args or [])]}
    if launcher:
        worker["launcher"] = launcher
    runs_store.add_run(con, run_id, kind, str(run_dir), config | {"worker": worker}, user)
    return run_id, run_dir


def preparing():
    """Hold the queue while a new run's inputs are written, so `pump` never starts a run whose
    folder is half made: `with runs.preparing(): new_run(...); write inputs; pump(con)`."""
    return _queue_lock


def worker_of(run: dict) -> tuple[list[str], list[str] | None]:
    worker = json.loads(run["config"]).get("worker") or {}
    return worker.get("args") or [], worker.get("launcher")


def pump(con) -> list[str]:
    """Start the oldest queued runs while a slot is free; return the ids started."""
    started = []
    with _queue_lock:
        running = runs_store.list_runs(con, states=("running",))
        free = slots() - int(running["kind"].isin(HEAVY).sum())
        queued = runs_store.list_runs(con, states=("queued",))
        for run_id in queued["id"].iloc[::-1]:  # list_runs is newest first
            if free <= 0:
                break
            launch(con, run_id)
            started.append(run_id)
            free -= 1
    return started


def launch(con, run_id: str):
    """Start a queued run's worker now (pump decides when)."""
    run = runs_store.get_run(con, run_id)
    args, launcher = worker_of(run)
    if not args:
        raise ValueError(f"Run {run_id} has no worker command.")
    runfolder.start_worker(run["run_dir"], args, launcher=launcher)
    runs_store.set_state(con, run_id, "running")


def resume(con, run_id: str):
    """Queue a cancelled or failed run again; its worker carries on where it stopped."""
    run = runs_store.get_run(con, run_id)
    if run["state"] not in ("cancelled", "failed"):
        raise ValueError(f"Run {run_id} is {run['state']}; only a stopped run can be resumed.")
    runfolder.RunWriter(run["run_dir"]).set_status("queued", None)
    runs_store.set_state(con, run_id, "queued")
    pump(con)


def queue_position(con, run_id: str) -> int | None:
    """1 for the next run to start, 2 for the one after, …; None when not queued."""
    queued = runs_store.list_runs(con, states=("queued",))["id"].tolist()[::-1]
    return queued.index(run_id) + 1 if run_id in queued else None


def refresh_run(con, run_id: str, ingest=None) -> runfolder.RunState:
    """Ingest new events (and results through `ingest(con, run)`) and the state of a run."""
    run = runs_store.get_run(con, run_id)
    if run["state"] in runfolder.FINAL:
        return runfolder.RunState(run["state"], run["reason"], None)
    if run["state"] == "queued":
        return runfolder.RunState("queued", None, None)
    state = runfolder.poll(run["run_dir"])
    events, offset = runfolder.read_events(run["run_dir"], int(run["events_offset"]))
    if not events and state.state == run["state"] and state.state == "running":
        return state  # nothing new: no write at all, so a poll costs a stat and a small read
    with transaction(con):
        runs_store.add_events(con, run_id, events, offset)
        if ingest:
            ingest(con, run)
        if state.state != run["state"]:
            runs_store.set_state(con, run_id, state.state, state.reason)
    return state


def cancel_run(con, run_id: str):
    """Cancel a run: a queued one at once, a running one by asking its worker to stop after
    saving what it has (workers check between generation steps and training steps)."""
    with _queue_lock:
        run = runs_store.get_run(con, run_id)
        if run["state"] == "queued":
            runfolder.RunWriter(run["run_dir"]).set_status(
                "cancelled", "Cancelled before it started."
            )
            runs_store.set_state(con, run_id, "cancelled", "Cancelled before it started.")
            return
    if run["state"] == "running":
        runfolder.request_cancel(run["run_dir"])


def read_config(run: dict) -> dict:
    return json.loads(run["config"])
