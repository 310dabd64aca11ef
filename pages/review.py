"""Review: one draft at a time. Rate it, tick the quick checks, edit it and save (it becomes an
accepted, human-corrected example), mark it unusable, or skip it. Ctrl+Enter in the summary box
saves. Each reviewer has their own queue; with an overlap above 1 drafts go to that many
reviewers, and agreement is shown per pair."""

import streamlit as st

from engine.highlight import source_sentences
from engine.labelling import agreement, mark_unusable, next_draft, save_review, skip
from pages._ui import db
from store import labelling as label_store

con = db()
reviewer = st.session_state["user"]["name"]
st.title("Review")
overlap = st.sidebar.number_input(
    "Reviewers per draft (overlap, for agreement)", 1, 5, 1, key="review_overlap"
)
drafts, reviewed = label_store.count_drafts(con)
st.caption(f"{reviewed:,} of {drafts:,} drafts reviewed.")

draft = next_draft(con, reviewer, int(overlap))
if draft is None:
    st.info("Your queue is empty. Start a drafting run on the Label page to fill it.")
else:
    st.subheader(draft["title"] or f"Document {draft['document_id'][:12]}")
    trunc = (
        " · ⚠️ the document was truncated to fit the model's context" if draft["truncated"] else ""
    )
    st.caption(
        f"Draft {draft['id']} by {draft['model_id']} · prompt v{draft['prompt_version']}{trunc}"
    )
    left, right = st.columns(2)
    with left.container(height=520):
        for sentence, used in source_sentences(draft["clean_text"], draft["summary"]):
            st.markdown(f":orange-background[{sentence}]" if used else sentence)
    with right.form(f"review_form_{draft['id']}"):
        summary = st.text_area(
            "Summary (edit it to correct it)", draft["summary"], height=220, key="review_summary"
        )
        rating = st.feedback("stars", key="review_rating")
        c = st.columns(3)
        faithful = c[0].checkbox("Faithful", key="review_faithful")
        complete = c[1].checkbox("Complete", key="review_complete")
        concise = c[2].checkbox("Concise", key="review_concise")
        b = st.columns(3)
        save = b[0].form_submit_button("Save as reference", type="primary")
        unusable = b[1].form_submit_button("Unusable")
        skipped = b[2].form_submit_button("Skip")
    stars = None if rating is None else rating + 1
    if save:
        try:
            example_id = save_review(
                con, draft["id"], reviewer, summary, stars, faithful, complete, concise
            )
            st.toast(f"Saved as accepted example {example_id}.")
            st.rerun()
        except ValueError as e:
            st.error(str(e))
    elif unusable:
        mark_unusable(con, draft["id"], reviewer, stars)
        st.rerun()
    elif skipped:
        skip(con, draft["id"], reviewer)
        st.rerun()

with st.expander("Agreement between reviewers (Krippendorff's alpha on ratings)"):
    st.dataframe(agreement(con), hide_index=True)
    st.dataframe(label_store.review_counts(con), hide_index=True)
