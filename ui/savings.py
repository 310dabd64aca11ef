"""The review-effort table (engine/labelling/savings.py) as a widget, for Compare and the Loop
page."""

from __future__ import annotations

import streamlit as st

from engine.labelling.savings import readable, savings_table


def savings_ui(con, models: tuple[str, ...] | None = None):
    """Per model that drafted (or those of `models` that did): share of drafts accepted
    unchanged, median edit distance, median seconds per review, and the change against the
    model it was fine-tuned from with a bootstrap 95% CI."""
    table = savings_table(con, list(models) if models else None)
    with st.expander("Review effort: what reviewing each model's drafts cost", expanded=False):
        if table.empty:
            st.caption("No reviewed drafts from these models yet.")
            return
        st.dataframe(readable(table), hide_index=True)
        st.caption(
            "Decisions are saved or unusable drafts (skips are not decisions). Edit distance: "
            "word-level Levenshtein between the draft and the saved text over the longer one "
            "(0: accepted unchanged). Seconds: from opening the draft to the decision. "
            '"vs base": this model minus the model it was fine-tuned from, on different '
            "documents (two-sample bootstrap); lower edit distance and seconds are better."
        )
