"""Blind A/B: a test document and two models' summaries of it, in random order and unlabelled.
Pick the better one or call a tie, with an optional reason. Nothing on this page says which
model wrote which, before or after the vote (learning a model's style would unblind later
votes); the win rates are on the Compare page. An admin opens comparisons there. Documents and
summaries show as plain text. Reviewers' Chat cannot regenerate these greedy summaries (it
samples, with the production model only: engine/evaluation/preference.py), so it cannot unblind a
vote."""

import streamlit as st

from engine.evaluation.preference import next_item, pending_count, record_vote
from store import preferences as pref_store
from ui.common import db, require_login
from ui.text import plain

CHOICES = ("left", "right", "tie")


def item_ui(item: dict):
    """The document, then the two summaries side by side as Summary 1 and Summary 2."""
    st.subheader(plain(item["title"] or "Untitled document"))
    with st.container(height=360):
        st.text(item["document"])
    columns = st.columns(2)
    for column, label, text in zip(
        columns, ("Summary 1", "Summary 2"), (item["left_summary"], item["right_summary"])
    ):
        with column.container(border=True):
            st.markdown(f"**{label}**")
            st.text(text)


def vote_ui() -> tuple[str | None, str]:
    """The vote buttons and the reason box; returns (left | right | tie | None, reason)."""
    with st.form("blind_form", clear_on_submit=True, border=False):
        reason = st.text_input("Why? (optional)", key="blind_reason")
        b = st.columns(3)
        clicked = [
            b[0].form_submit_button("Summary 1 is better", key="blind_left", type="primary"),
            b[1].form_submit_button("Summary 2 is better", key="blind_right", type="primary"),
            b[2].form_submit_button("Tie", key="blind_tie"),
        ]
    chosen = [choice for choice, hit in zip(CHOICES, clicked) if hit]
    return (chosen[0] if chosen else None), reason


require_login()
con = db()
reviewer = st.session_state["user"]["name"]
st.title("Blind A/B")
st.caption(
    "Two summaries of the same document, in random order. Pick the better one: faithful to "
    "the document first, then complete, then concise."
)
if error := st.session_state.pop("blind_error", None):
    st.error(error)
if st.session_state.pop("blind_saved", False):
    st.toast("Vote saved.")
if "blind_item" not in st.session_state:  # kept across reruns so the sides do not reshuffle
    st.session_state["blind_item"] = next_item(con, reviewer)
item = st.session_state["blind_item"]
if item is None:
    del st.session_state["blind_item"]  # look again on the next visit
    st.info(
        "Nothing to vote on. An admin opens a blind comparison of two evaluations on the "
        "Compare page."
    )
    st.stop()

st.caption(
    f"Your votes: {pref_store.count_votes(con, reviewer):,} · "
    f"left to vote on: {pending_count(con, reviewer):,}"
)
item_ui(item)
choice, reason = vote_ui()
if choice:
    try:
        record_vote(con, item, choice, reviewer, reason)
        st.session_state["blind_saved"] = True
    except ValueError as e:
        st.session_state["blind_error"] = str(e)
    del st.session_state["blind_item"]
    st.rerun()
