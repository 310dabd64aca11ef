"""Label: draft summaries with a model for documents that have none, as a background run that
waits its turn in the job queue and never blocks the app. Progress updates live; a run can be
cancelled and resumed. Documents are drafted most useful first; the order and its reasons are
shown under "What to label next" (engine/labelling/ordering.py), and admins can switch it to
plain order."""

import streamlit as st

from engine.auth import can
from engine.evaluation.preference import draft_settings
from engine.labelling import ordering
from engine.labelling.runs import start_drafting
from engine.models.registry import ensure_default_model, production_model
from store import labelling as label_store
from store import runs as runs_store
from ui.common import db, generation_ui, model_ui, require_login
from ui.jobs import POLL_EVERY_S, job_ui
from ui.live import live_fragment

require_login()
con = db()
st.title("Label")
st.caption(
    "The model drafts; reviewers correct on the Review page; corrections become "
    "accepted training examples."
)
if started := st.session_state.pop("label_started", None):
    st.toast(f"Queued {started}.")
waiting = len(label_store.documents_to_draft(con))
with st.form("label_start"):
    if can(st.session_state["user"], "compare"):
        model_id = model_ui(con, "Drafting model", "label_model")
        settings = generation_ui("label")
    else:  # reviewers draft with the production model, house settings (blind A/B stays blind)
        ensure_default_model(con, progress=lambda msg: None)
        model_id, settings = production_model(con), None
        st.caption(f"Drafting model: {model_id} (the production model)")
    limit = st.number_input(
        f"How many of the {waiting:,} documents without a summary or draft (0 = all)",
        0,
        value=0,
        key="label_limit",
    )
    if st.form_submit_button("Start drafting", type="primary"):
        try:
            settings = draft_settings(con, st.session_state["user"], model_id, settings)
            # Returns at once: the poller ranks and exports the documents, then starts it.
            st.session_state["label_started"] = start_drafting(
                con,
                model_id,
                settings,
                limit=int(limit) or None,
                user=st.session_state["user"]["name"],
            )
            st.rerun()
        except ValueError as e:
            st.error(str(e))


with st.expander("What to label next"):
    priority = label_store.priority_order(con)
    if can(st.session_state["user"], "compare"):
        wanted = st.toggle("Most useful first (off: plain order)", priority, key="label_order")
        if wanted != priority:
            ordering.set_order(con, st.session_state["user"], wanted)
            st.rerun()
    if not priority:
        st.caption("Plain order: documents and drafts are taken in the order they were stored.")
    else:
        if ordering.is_stale(con):
            st.caption("Ranked before the latest changes; drafting and new drafts re-rank it.")
        if st.button("Rank now", key="label_rank"):
            with st.spinner("Ranking…"):
                ordering.refresh(con)
        st.dataframe(label_store.priorities(con, 20), hide_index=True)


@live_fragment(POLL_EVERY_S)
def runs_ui():
    con = db()
    for run in runs_store.list_runs(con, kind="draft").head(20).to_dict("records"):
        job_ui(con, run, "label", resumable=True)


runs_ui()
