"""Label: draft summaries with a model for documents that have none, as a background run that
never blocks the app. Progress updates live; a run can be cancelled and resumed."""

import streamlit as st

from engine import runs
from engine.labelling import refresh_drafting, start_drafting
from pages._ui import db, generation_ui, model_ui
from store import labelling as label_store
from store import runs as runs_store

con = db()
st.title("Label")
st.caption(
    "The model drafts; reviewers correct on the Review page; corrections become "
    "accepted training examples."
)
waiting = len(label_store.documents_to_draft(con))
with st.form("label_start"):
    model_id = model_ui(con, "Drafting model", "label_model")
    settings = generation_ui("label")
    limit = st.number_input(
        f"How many of the {waiting:,} documents without a summary or draft (0 = all)",
        0,
        value=0,
        key="label_limit",
    )
    if st.form_submit_button("Start drafting", type="primary"):
        try:
            run_id = start_drafting(
                con,
                model_id,
                settings,
                limit=int(limit) or None,
                user=st.session_state["user"]["name"],
            )
            st.success(f"Started {run_id}.")
        except ValueError as e:
            st.error(str(e))


@st.fragment(run_every=2)
def runs_ui():
    con = db()
    table = runs_store.list_runs(con, kind="draft")
    for run_id in table["id"]:
        state = refresh_drafting(con, run_id)
        run = runs_store.get_run(con, run_id)
        progress = runs_store.run_events(con, run_id, "progress")
        done, total = (progress[-1]["done"], progress[-1]["total"]) if progress else (0, 1)
        cols = st.columns([3, 4, 1, 1])
        cols[0].write(f"**{run_id}** · {state.state}")
        cols[1].progress(min(1.0, done / max(total, 1)), text=f"{done:,} / {total:,}")
        if state.state == "running" and cols[2].button("Cancel", key=f"label_cancel_{run_id}"):
            runs.cancel_run(con, run_id)
        if state.state in ("cancelled", "failed") and cols[3].button(
            "Resume", key=f"label_resume_{run_id}"
        ):
            runs.launch(con, run_id, ["draft-worker", run["run_dir"]])
        if state.state == "failed" and state.reason:
            st.error(state.reason)


runs_ui()
