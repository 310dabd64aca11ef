"""Compare: two models on the held-out test split of a frozen dataset. Evaluate each (a
background run), then read the summary table with confidence intervals, the distributions, a
per-document scatter, and each document side by side, sorted by where B lost most. Admins can
promote B to production, open a blind A/B review of the pair, and export an HTML report."""

import streamlit as st

from engine.evaluation import charts
from engine.evaluation.comparison import compare_runs
from engine.evaluation.preference import open_pair, win_rates, win_rates_by_reviewer
from engine.evaluation.report import comparison_html
from engine.evaluation.runs import ready_pair
from engine.labelling.savings import savings_table
from ui.common import db, require
from ui.compare import (
    document_ui,
    evaluations_ui,
    pick_ui,
    promote_ui,
    settings_ui,
    summary_ui,
)

require("compare")
con = db()
st.title("Compare")
dataset, model_a, model_b = pick_ui(con)
ready = ready_pair(con, dataset, model_a, model_b)
evaluations_ui(dataset, (model_a, model_b), ready is not None, settings_ui())
if model_a == model_b:
    st.info("Pick two different models.")
    st.stop()
if ready is None:
    st.info("Evaluate both models on this test split to compare them (greedy, 160 new tokens).")
    st.stop()

try:
    comparison = compare_runs(con, *ready)
except ValueError as e:
    st.error(str(e))
    st.stop()
st.caption(
    f"{len(comparison.pairs)} test documents scored by both, dataset v{comparison.dataset_id}"
)
for warning in comparison.warnings:
    st.warning(warning)
summary_ui(comparison)
tabs = st.tabs(["Distributions", "Per document", "Blind preference", "Actions"])
with tabs[0]:
    st.altair_chart(charts.distributions(comparison.pairs, model_a, model_b), width="content")
with tabs[1]:
    metric = st.selectbox(
        "Score", ["rougeL", "rouge1", "rouge2", "similarity"], key="compare_metric"
    )
    st.altair_chart(charts.scatter(comparison.pairs, metric, model_a, model_b), width="content")
    pairs = comparison.pairs.sort_values("delta_rougeL")
    if st.toggle("Only documents where B lost", key="compare_losses"):
        pairs = pairs[pairs["delta_rougeL"] < 0]
    picked = st.dataframe(
        pairs[["example_id", "title", "rougeL_a", "rougeL_b", "delta_rougeL"]],
        hide_index=True,
        on_select="rerun",
        selection_mode="single-row",
        key="compare_table",
    )
    rows = picked.selection.rows if picked else []
    if not pairs.empty:
        document_ui(pairs.iloc[rows[0] if rows else 0], model_a, model_b)
with tabs[2]:
    st.caption("Win rate of model_b over model_a in blind votes (ties count half), 95% CI.")
    st.dataframe(win_rates(con), hide_index=True)
    with st.expander("Per reviewer"):
        st.dataframe(win_rates_by_reviewer(con), hide_index=True)
    if st.button("Open a blind A/B review of A and B", key="compare_blind"):
        try:
            open_pair(con, *ready, user=st.session_state["user"])
            st.success("Reviewers now see this pair, unlabeled, on the Blind A/B page.")
        except ValueError as e:
            st.error(str(e))
with tabs[3]:
    st.download_button(
        "Download the HTML report",
        lambda: comparison_html(
            comparison, win_rates(con), savings=savings_table(con, [model_a, model_b])
        ),
        file_name=f"tuneloop-{model_b}-vs-{model_a}.html",
        mime="text/html",
        key="compare_report",
    )
    if st.button("Chat with both side by side", key="compare_chat"):
        st.session_state["chat_model"], st.session_state["chat_model_b"] = model_a, model_b
        st.switch_page("pages/chat.py")
    promote_ui(con, model_b)
