"""Review: one draft at a time. Rate it, tick the quick checks, edit it and save (it becomes an
accepted, human-corrected example), mark it unusable, or skip it. Ctrl+Enter in the summary box
saves. Each reviewer has their own queue; with an overlap above 1 drafts go to that many
reviewers, and agreement is shown per pair. Every widget is keyed by the draft's id, so nothing
from one draft carries into the next; "Your recent reviews" can withdraw a saved correction.
Drafts come most useful first, with the reason (engine/labelling/ordering.py). The Feedback queue
holds rated and corrected answers from Chat and the API: accept (a summary becomes an example)
or reject. Each decision records its seconds and edit distance (engine/labelling/savings.py)."""

import time

import pandas as pd
import streamlit as st

from engine.data.editing import revert_change
from engine.labelling import feedback_review
from engine.labelling.highlight import source_sentences
from engine.labelling.review import agreement, mark_unusable, next_draft, save_review, skip
from engine.scheduler import catch_up_api_log
from store import feedback as fb_store
from store import labelling as label_store
from ui.common import db, require_login
from ui.text import plain

require_login()
con = db()
reviewer = st.session_state["user"]["name"]
st.title("Review")
if flash := st.session_state.pop("review_flash", None):
    st.toast(flash)


def done(message: str):
    """Act first, then draw: the next draft opens from the store, with the message shown."""
    st.session_state["review_flash"] = message
    st.rerun()


def feedback_ui():
    """One queued answer from Chat or the API: the question or document, the answer, the
    asker's rating and correction; the reviewer edits the final text, rates, accepts or
    rejects. Widgets are keyed by the item's id."""
    item = feedback_review.next_item(con)
    if item is None:
        st.info("No feedback waiting. Ratings and corrections from Chat and the API land here.")
        return
    item_id = int(item["id"])
    opened = st.session_state.setdefault(f"review_fb_opened_{item_id}", time.time())
    thumbs = {1: "👍", 0: "👎"}.get(None if pd.isna(item["rating"]) else int(item["rating"]), "")
    st.caption(
        f"Feedback {item_id} from {item['source']} ({plain(item['created_by'])}) on "
        f"{plain(item['model_id'])} {thumbs}"
        + (" · proposed as an example" if item["proposed"] else "")
    )
    left, right = st.columns(2)
    document = item["document"] if isinstance(item["document"], str) else None
    left.markdown("**Document**" if document else "**Conversation** (not a summary: no example)")
    left.container(height=420).text(document or item["prompt"])
    right.markdown("**The model's answer**")
    right.text(item["answer"])
    corrected = item["corrected"] if isinstance(item["corrected"], str) else None
    with right.form(f"review_fb_form_{item_id}"):
        text = st.text_area(
            "Final text", corrected or item["answer"], key=f"review_fb_text_{item_id}"
        )
        stars = st.feedback("stars", key=f"review_fb_rating_{item_id}")
        b = st.columns(2)
        accept = b[0].form_submit_button("Accept", type="primary")
        reject = b[1].form_submit_button("Reject")
    stars = None if stars is None else stars + 1
    try:
        if accept:
            example_id, flags = feedback_review.accept(con, item_id, user, text, stars, opened)
            note = f" (flags: {', '.join(flags)})" if flags else ""
            done(
                f"Feedback {item_id} accepted"
                + (f" as example {example_id}{note}." if example_id else ".")
            )
        elif reject:
            feedback_review.reject(con, item_id, user, stars, opened)
            done(f"Feedback {item_id} rejected.")
    except ValueError as e:
        st.error(str(e))


user = st.session_state["user"]
mode = st.radio("Queue", ["Drafts", "Feedback"], horizontal=True, key="review_mode")
if mode == "Feedback":
    catch_up_api_log(con, sample=True)  # what the API answered up to now, not a minute ago
    st.caption(f"{fb_store.count_queued(con):,} answers waiting for review.")
    feedback_ui()
    st.stop()
overlap = st.sidebar.number_input(
    "Reviewers per draft (overlap, for agreement)", 1, 5, 1, key="review_overlap"
)
drafts, reviewed = label_store.count_drafts(con)
st.caption(f"{reviewed:,} of {drafts:,} drafts reviewed.")

draft = next_draft(con, reviewer, int(overlap))
if draft is None:
    st.info("Your queue is empty. Start a drafting run on the Label page to fill it.")
else:
    st.subheader(plain(draft["title"] or f"Document {draft['document_id'][:12]}"))
    trunc = (
        " · ⚠️ the document was truncated to fit the model's context" if draft["truncated"] else ""
    )
    st.caption(
        f"Draft {draft['id']} by {draft['model_id']} · prompt v{draft['prompt_version']}{trunc}"
    )
    if isinstance(draft["reason"], str):
        st.caption(f"Why now: {plain(draft['reason'])}")
    left, right = st.columns(2)
    with left.container(height=520):
        for sentence, used in source_sentences(draft["clean_text"], draft["summary"]):
            st.markdown(f":orange-background[{plain(sentence)}]" if used else plain(sentence))
    draft_id = int(draft["id"])
    opened = st.session_state.setdefault(f"review_opened_{draft_id}", time.time())
    with right.form(f"review_form_{draft_id}"):
        summary = st.text_area(
            "Summary (edit it to correct it)",
            draft["summary"],
            height=220,
            key=f"review_summary_{draft_id}",
        )
        rating = st.feedback("stars", key=f"review_rating_{draft_id}")
        c = st.columns(3)
        faithful = c[0].checkbox("Faithful", key=f"review_faithful_{draft_id}")
        complete = c[1].checkbox("Complete", key=f"review_complete_{draft_id}")
        concise = c[2].checkbox("Concise", key=f"review_concise_{draft_id}")
        b = st.columns(3)
        save = b[0].form_submit_button("Save as reference", type="primary")
        unusable = b[1].form_submit_button("Unusable")
        skipped = b[2].form_submit_button("Skip")
    stars = None if rating is None else rating + 1
    if save:
        try:
            example_id = save_review(
                con, draft_id, reviewer, summary, stars, faithful, complete, concise, opened
            )
        except ValueError as e:
            st.error(str(e))
        else:
            done(f"Draft {draft_id} saved as accepted example {example_id}.")
    elif unusable:
        mark_unusable(con, draft_id, reviewer, stars, opened)
        done(f"Draft {draft_id} marked unusable.")
    elif skipped:
        skip(con, draft_id, reviewer)
        done(f"Draft {draft_id} skipped: it goes back to the pool.")

with st.expander("Your recent reviews"):
    for r in label_store.recent_reviews(con, reviewer).itertuples():
        c = st.columns([6, 1])
        rated = "" if pd.isna(r.rating) else f" · {int(r.rating)}★"
        line = f"Draft {r.draft_id} · {r.action}{rated} · {r.created_at:%d %b %H:%M}"
        if not pd.isna(r.example_id):
            line += f" → example {int(r.example_id)} ({r.status}): {str(r.summary)[:120]}"
        c[0].text(line)
        if r.action == "saved" and not pd.isna(r.created_change) and r.status != "rejected":
            revert = c[1].button(
                "Revert",
                key=f"review_revert_{r.id}",
                help="Withdraw the correction: its example is rejected (kept in its history).",
            )
            if revert:
                try:
                    done(revert_change(con, int(r.created_change), st.session_state["user"]))
                except ValueError as e:
                    st.error(str(e))

with st.expander("Agreement between reviewers (Krippendorff's alpha on ratings)"):
    st.dataframe(agreement(con), hide_index=True)
    st.dataframe(label_store.review_counts(con), hide_index=True)
