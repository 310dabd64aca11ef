"""How every page shows a background job: its state or place in the queue, the phase it is in
with progress and an honest ETA, and Cancel / Resume buttons that work from any page. Pages only
read the store here; the background poller (engine/scheduler.py) does the ingesting."""

from __future__ import annotations

import streamlit as st

from engine.jobs import runfolder, runqueue
from store import runs as runs_store
from ui.live import live_fragment
from ui.text import plain

POLL_EVERY_S = 3  # seconds between a page's looks at a running job
SIDEBAR_EVERY_S = 5  # the sidebar's job list, on every page: a little slower


def describe_progress(con, run_id: str) -> tuple[float, str]:
    """(fraction done, "generating 5/14 · token 37/160 · about 40 s left") from the newest
    progress event."""
    p = runs_store.latest_event(con, run_id, "progress")
    if not p:
        return 0.0, "starting"
    if runfolder.event_problem(p):  # stored before events were checked: one run, not the page
        return 0.0, "progress unreadable"
    done = p.get("done") if p.get("done") is not None else p.get("step") or 0
    total = p.get("total") if p.get("total") is not None else p.get("total_steps") or 1
    text = f"{p.get('phase') or 'working'} {done:,}/{total:,}"
    if p.get("max_new_tokens") and p.get("step"):
        text += f" · token {p['step']}/{p['max_new_tokens']}"
    if p.get("eta_s") is not None:
        text += f" · about {_duration(p['eta_s'])} left"
    return min(1.0, max(0.0, done / max(total, 1))), text


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 90:
        return f"{seconds} s"
    if seconds < 5400:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


def job_ui(con, run: dict, key: str, resumable: bool = False):
    """One job: a line with its state, a progress bar, Cancel (queued or running) and, when
    `resumable`, Resume (cancelled or failed); the buttons for its owner and admins only."""
    run_id, state = run["id"], run["state"]
    user = st.session_state.get("user")
    cols = st.columns([4, 5, 1])
    cols[0].write(f"**{run_id}** · {state}")
    if state == "queued" and not runqueue.is_ready(run):
        what = "choosing and ranking the documents" if run["kind"] == "draft" else "its inputs"
        cols[1].caption(f"preparing: {what}")
    elif state == "queued":
        position = runqueue.queue_position(con, run_id)
        cols[1].caption(f"waiting: number {position} in the queue" if position else "waiting")
    elif state == "running":
        fraction, text = describe_progress(con, run_id)
        cols[1].progress(fraction, text=text)
    elif state == "failed" and run.get("reason"):
        st.error(plain(run["reason"]))  # a log tail may quote documents
    elif run.get("reason"):
        cols[1].caption(plain(run["reason"]))
    if bad := runs_store.latest_event(con, run_id, "invalid_event"):
        st.warning(f"This run wrote an event that cannot be shown: {plain(bad['problem'])}.")
    if not runqueue.may_control(user, run):
        return
    try:
        if state in ("queued", "running"):
            if cols[2].button("Cancel", key=f"{key}_cancel_{run_id}"):
                runqueue.cancel_run(con, run_id, user)
                st.toast(f"Cancel requested for {run_id}.")
        elif resumable and state in ("cancelled", "failed"):
            if cols[2].button("Resume", key=f"{key}_resume_{run_id}"):
                runqueue.resume(con, run_id, user)
                st.toast(f"{run_id} queued again.")
    except ValueError as e:  # refused: not theirs, over the limit, still stopping
        st.error(str(e))


def sidebar_jobs_ui(con_factory, poller):
    """The sidebar's live list of queued and running jobs, and a toast when one of this
    session's jobs ends (reported by the background poller)."""

    @live_fragment(SIDEBAR_EVERY_S)
    def jobs_fragment():
        con = con_factory()
        active = runs_store.active_runs(con)
        seen = st.session_state.setdefault("jobs_seen_finished", poller().n_finished)
        finished, st.session_state["jobs_seen_finished"] = poller().finished_since(seen)
        for run in finished:
            icon = {"succeeded": "✅", "failed": "❌", "cancelled": "⏹️"}.get(run["state"], "ℹ️")
            st.toast(f"{run['kind']} run {run['id']} {run['state']}.", icon=icon)
        if active.empty:
            st.caption("No jobs running.")
            return
        for run in active.itertuples():
            if run.state == "running":
                _, text = describe_progress(con, run.id)
                st.caption(f"▶ {run.kind} · {text}")
            else:
                st.caption(f"⏳ {run.kind} · queued #{runqueue.queue_position(con, run.id)}")

    with st.sidebar:
        jobs_fragment()
