"""The app's background poller: every few seconds, bring every unfinished run up to date and
start what comes next, whether or not anyone has a page open.

One `tick` ingests each live run's new events and results (drafts, a trained model, evaluation
scores), starts the follow-ups of a finished one (a succeeded training run registers its model
and is evaluated: engine/followups.py; a sweep queues its next trial), and starts queued runs
when a slot is free.
`Poller` runs `tick` on a daemon thread of the app process; pages only read the store. The CLI
calls `wait_for`, which ticks until its run has finished. Finished runs are reported to
listeners (the sidebar uses this to tell the user a job ended).
"""

from __future__ import annotations

import logging
import threading
import time

from engine.jobs import runfolder, runqueue
from engine.serving.runs import ingest_requests
from store import runs as runs_store

POLL_EVERY_S = 2.0
log = logging.getLogger(__name__)
_tick_lock = threading.Lock()  # the poller and a page's "start" never ingest the same run at once


def _ingest(kind: str):
    if kind == "draft":
        from engine.labelling.runs import ingest_drafts

        return ingest_drafts
    if kind == "train":
        from engine.training.runs import register_if_done

        return register_if_done
    if kind == "eval":
        from engine.evaluation.runs import ingest_evaluation

        return ingest_evaluation
    return None


def _prepare(con):
    """Write the inputs of queued runs that were started without them (slow work kept off a
    page's click: ranking the documents to draft); a run that cannot be prepared fails."""
    from engine.labelling.runs import prepare_drafting

    for run in runs_store.list_runs(con, states=("queued",)).iloc[::-1].to_dict("records"):
        if runqueue.is_ready(run) or run["kind"] != "draft":
            continue
        try:
            prepare_drafting(con, run)
        except Exception as e:  # noqa: BLE001 - this run fails with why; the others go on
            if not isinstance(e, ValueError):  # e.g. every document was drafted meanwhile
                log.exception("could not prepare run %s", run["id"])
            reason = str(e) if isinstance(e, ValueError) else f"{type(e).__name__}: {e}"
            runfolder.RunWriter(run["run_dir"]).set_status("failed", reason)
            runs_store.set_state(con, run["id"], "failed", reason)
            continue  # still unprepared: a Resume prepares it again
        runqueue.mark_ready(run)


def _after(con, kind: str, run_id: str, state: str):
    """What a finished run sets in motion."""
    if kind == "train" and state == "succeeded":
        from engine.followups import evaluate_if_done

        evaluate_if_done(con, run_id)
    if kind == "train":
        from engine.training.sweeps import advance_sweeps

        advance_sweeps(con)


def tick(con) -> list[dict]:
    """One pass over every unfinished run; returns the runs that finished in it
    ({"id", "kind", "state", "reason"})."""
    finished = []
    with _tick_lock:
        live = runs_store.list_runs(con, states=("running",))
        for run_id, kind in live[["id", "kind"]].values:
            try:
                state = runqueue.refresh_run(con, run_id, _ingest(kind))
            except Exception:  # noqa: BLE001 - one damaged run must not stop the others
                log.exception("could not refresh run %s", run_id)
                continue
            if state.state in runfolder.FINAL:
                _after(con, kind, run_id, state.state)
                finished.append(
                    {"id": run_id, "kind": kind, "state": state.state, "reason": state.reason}
                )
        _prepare(con)
        runqueue.pump(con)
        from engine.training.runs import drop_unstarted_datasets

        drop_unstarted_datasets(con)  # a retrain cancelled while queued leaves no version
        ingest_requests(con)  # the API server's request log: one stat when idle
        from engine.labelling.feedback import sample_in_background

        sample_in_background(con)  # opted-in API summaries into the feedback queue, once a minute
    return finished


def catch_up_api_log(con, sample: bool = False):
    """Ingest the API server's request log now and, with `sample`, queue the opted-in summaries
    for review: what a page calls to draw current figures. Under the tick's lock, so a page and
    the poller never ingest the same lines twice."""
    with _tick_lock:
        ingest_requests(con)
        if sample:
            from engine.labelling.feedback import sample_api_requests

            sample_api_requests(con)


def wait_for(con, run_id: str, every_s: float = 1.0) -> runfolder.RunState:
    """Tick until the run has finished (the CLI's way to follow a job); returns its state."""
    while True:
        tick(con)
        run = runs_store.get_run(con, run_id)
        if run["state"] in runfolder.FINAL:
            return runfolder.RunState(run["state"], run["reason"], None)
        time.sleep(every_s)


class Poller:
    """`tick` on a daemon thread every `every_s` seconds, on its own cursor. Errors are logged
    and the loop goes on: a bad run must not stop every other job from finishing."""

    def __init__(self, con, every_s: float = POLL_EVERY_S):
        self.con, self.every_s = con, every_s
        self.finished: list[dict] = []  # recent finished runs, newest last, for notifications
        self.n_finished = 0  # how many have finished since the app started
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="tuneloop-poller", daemon=True)

    def finished_since(self, seen: int) -> tuple[list[dict], int]:
        """The runs that finished after the first `seen` (as far as they are kept), and the
        new count to remember."""
        n = self.n_finished
        return (self.finished[-(n - seen) :] if n > seen else []), n

    def start(self) -> Poller:
        import atexit

        self._thread.start()
        atexit.register(self.stop)  # never kill the thread inside a database call at exit
        return self

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=10)

    def _loop(self):
        cursor = self.con.cursor()
        while not self._stop.is_set():
            try:
                done = tick(cursor)
                self.finished = (self.finished + done)[-50:]
                self.n_finished += len(done)
                from engine.labelling.ordering import refresh_in_background

                refresh_in_background(cursor)  # what to review next; may embed for seconds
            except Exception as e:  # noqa: BLE001 - keep polling; the reason is in the log
                if "closed" in str(e).lower():  # the app closed its database: nothing to poll
                    return
                log.exception("background poll failed")
            self._stop.wait(self.every_s)
