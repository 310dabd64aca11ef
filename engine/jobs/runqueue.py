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

Only a run's owner or an admin may cancel or resume it (`check_control`), both audited; a
resumed run counts against its owner's limit (`check_user_limit`: at most
`max_runs_per_user(kind)` drafting runs queued or running per person).
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from functools import cache
from pathlib import Path

from engine.audit import record
from engine.auth import CONSOLE, PermissionDenied, check
from engine.errors import TuneloopError
from engine.jobs import runfolder
from engine.paths import data_dir
from store import runs as runs_store
from store import transaction

HEAVY = ("draft", "train", "eval")  # kinds that share the queue
# Kinds a reviewer may start, with the setting that caps how many one person has waiting.
PER_USER_LIMITS = {"draft": "TUNELOOP_MAX_DRAFT_RUNS_PER_USER"}
WORDS = {"draft": "drafting", "train": "training", "eval": "evaluation"}
UNPREPARED = "preparing"  # a file in a queued run's folder while its inputs are not written
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
    ready: bool = True,
) -> tuple[str, Path]:
    """Make a run folder with its config.json and record the run as queued, with the worker
    command (`python -m engine ARGS`, under `launcher` when given) that `pump` will start.
    Returns (id, folder). Call it inside `with preparing():`, write the run's inputs, then
    call `pump`. `ready=False`: its inputs are written later, off the page's click (the
    poller calls the stage's prepare function, engine/scheduler.py); `pump` waits for
    `mark_ready`."""
    run_id = f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    run_dir = runs_dir() / run_id
    run_dir.mkdir()
    if not ready:
        (run_dir / UNPREPARED).touch()
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


def is_ready(run: dict) -> bool:
    return not (Path(run["run_dir"]) / UNPREPARED).exists()


def mark_ready(run: dict):
    (Path(run["run_dir"]) / UNPREPARED).unlink(missing_ok=True)


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
        for run in queued.iloc[::-1].to_dict("records"):  # list_runs is newest first
            run_id = run["id"]
            if free <= 0:
                break
            if not is_ready(run):  # the poller is still writing its inputs: the next one
                continue
            launch(con, run_id)
            started.append(run_id)
            free -= 1
    return started


def launch(con, run_id: str):
    """Start a queued run's worker now (pump decides when). A run whose folder a worker still
    holds is not started twice: it is followed as running."""
    run = runs_store.get_run(con, run_id)
    args, launcher = worker_of(run)
    if not args:
        raise TuneloopError(f"Run {run_id} has no worker command.")
    try:
        runfolder.start_worker(run["run_dir"], args, launcher=launcher)
    except runfolder.WorkerBusy:
        pass  # its worker lives on: the poller follows it
    runs_store.set_state(con, run_id, "running")


def max_runs_per_user(kind: str) -> int | None:
    """How many runs of `kind` one person may have queued or running (None: no limit)."""
    setting = PER_USER_LIMITS.get(kind)
    return max(1, int(os.environ.get(setting, "1"))) if setting else None


def check_user_limit(con, kind: str, user: str | None):
    """Refuse another queued run of `kind` for a user who has the allowed number waiting or
    running: the queue is shared, and one person must not fill it. None: the CLI's owner."""
    limit = max_runs_per_user(kind)
    if user is None or limit is None:
        return
    mine = runs_store.list_runs(con, kind=kind, states=("queued", "running"))
    mine = mine[mine["created_by"] == user]
    if len(mine) >= limit:
        raise TuneloopError(
            f"{user} already has {len(mine)} {WORDS.get(kind, kind)} run(s) waiting or running "
            f"({', '.join(mine['id'])}): wait for it to finish or cancel it first."
        )


def check_control(user: dict | None, run: dict):
    """Only the person who started a run, or an admin, may cancel or resume it."""
    check(user, "login")
    if user["role"] != "admin" and run["created_by"] != user["name"]:
        raise PermissionDenied(
            f"Run {run['id']} was started by {run['created_by'] or 'the console'}: only they "
            "or an admin can cancel or resume it."
        )


def may_control(user: dict | None, run: dict) -> bool:
    try:
        check_control(user, run)
    except PermissionDenied:
        return False
    return True


def _get(con, run_id: str) -> dict:
    run = runs_store.get_run(con, run_id)
    if run is None:
        raise TuneloopError(f"There is no run {run_id}.")
    return run


def resume(con, run_id: str, user: dict | None = CONSOLE):
    """Queue a cancelled or failed run again (its owner or an admin; audited, within the
    owner's limit); its worker carries on where it stopped."""
    with _queue_lock:
        run = _get(con, run_id)
        check_control(user, run)
        if run["state"] not in ("cancelled", "failed"):
            raise TuneloopError(
                f"Run {run_id} is {run['state']}; only a stopped run can be resumed."
            )
        if runfolder.worker_holds(run["run_dir"]):
            raise TuneloopError(f"Run {run_id} is still stopping: try again in a moment.")
        check_user_limit(con, run["kind"], run["created_by"])
        with transaction(con):
            runs_store.set_state(con, run_id, "queued")
            record(con, user, "resume_run", run_id, kind=run["kind"], before=run["state"])
        runfolder.RunWriter(run["run_dir"]).set_status("queued", None)
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
    if state.state not in runfolder.FINAL:
        # Only a worker's end moves a started run; "unknown" or a stray "queued" keep it
        # running (a queued state would start a second worker on the same folder).
        state = runfolder.RunState("running", state.reason, state.pid)
    start = int(run["events_offset"])
    rewound = runfolder.events_size(run["run_dir"]) < start  # the file was cut or replaced
    events, offset = runfolder.read_events(run["run_dir"], 0 if rewound else start)
    if not events and not rewound and state.state == run["state"]:
        return state  # nothing new: no write at all, so a poll costs a stat and a small read
    with transaction(con):
        runs_store.add_events(con, run_id, events, offset, skip_stored=rewound)
        if ingest:
            ingest(con, run)
        if state.state != run["state"]:
            runs_store.set_state(con, run_id, state.state, state.reason)
    return state


def cancel_run(con, run_id: str, user: dict | None = CONSOLE):
    """Cancel a run (its owner or an admin; audited): a queued one at once, a running one by
    asking its worker to stop after saving what it has (workers check between generation
    steps and training steps)."""
    with _queue_lock:
        run = _get(con, run_id)
        check_control(user, run)
        if run["state"] not in ("queued", "running"):
            return
        with transaction(con):
            if run["state"] == "queued":
                runs_store.set_state(con, run_id, "cancelled", "Cancelled before it started.")
            record(con, user, "cancel_run", run_id, kind=run["kind"], before=run["state"])
        if run["state"] == "queued":
            runfolder.RunWriter(run["run_dir"]).set_status(
                "cancelled", "Cancelled before it started."
            )
            return
    runfolder.request_cancel(run["run_dir"])


def read_config(run: dict) -> dict:
    return json.loads(run["config"])
