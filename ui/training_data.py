"""What the next training run will use, drawn from `engine.data.split.training_data_summary`:
accepted
examples by side, and what is left out (not yet split, no summary, not accepted) with a
"Split now" button, so new data is never silently left out of training."""

from __future__ import annotations

import streamlit as st

from engine.data.split import split_examples, training_data_summary

LOCKED = "Locked: a model has been evaluated on it, so a full re-split is refused."


def summary_ui(summary: dict):
    """The counts and what is left out; draws no button."""
    c = st.columns(4)
    c[0].metric("Train (accepted)", f"{summary['train']:,}")
    c[1].metric("Validation (accepted)", f"{summary['validation']:,}")
    c[2].metric(
        "Test (accepted, held out)",
        f"{summary['test']:,}",
        help=LOCKED if summary["test_locked"] else None,
    )
    c[3].metric("Accepted, not yet split", f"{summary['unsplit']:,}")
    if summary["unsplit"]:
        st.warning(
            f"{summary['unsplit']:,} accepted examples are not split yet: a run frozen now would "
            "leave them out. Split them (examples already split keep their side)."
        )
    left_out = []
    if summary["no_summary"]:
        left_out.append(f"{summary['no_summary']:,} accepted examples have no summary")
    if summary["not_accepted"]:
        left_out.append(f"{summary['not_accepted']:,} examples with a summary are not accepted yet")
    if left_out:
        st.caption("Also left out of training: " + "; ".join(left_out) + ".")


def training_data_ui(con, key: str = "train_split_now") -> dict:
    """What a run started now trains on, the summary and, when accepted examples have no side, a
    "Split now" button (incremental, with the last split's settings). Returns the summary."""
    from engine.training.runs import default_config

    summary = training_data_summary(con)
    cap = default_config(con).train_subset
    sample = (
        f" (one-click retrain's settings take a seeded sample of {cap:,} of them)"
        if cap and cap < summary["train"]
        else ""
    )
    st.caption(
        f"A run started now trains on {summary['train']:,} accepted examples{sample} and "
        f"validates on {summary['validation']:,}; the {summary['test']:,} test examples are held "
        "out for evaluation. One-click retrain splits new accepted examples first."
    )
    summary_ui(summary)
    if flash := st.session_state.pop(f"{key}_flash", None):
        st.toast(flash)
    if summary["unsplit"] and st.button("Split now", key=key, type="primary"):
        split_examples(con, user=st.session_state["user"])
        # A toast right before st.rerun() never shows (Streamlit 1.67): the next run shows it.
        st.session_state[f"{key}_flash"] = (
            f"Split {summary['unsplit']:,} new accepted examples; the others kept their side."
        )
        st.rerun()
    return summary
