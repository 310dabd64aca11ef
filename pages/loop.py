"""Loop health (admins): is use flowing back into data and better models? Examples by source
over time, feedback volume and the share corrected, time since the last retrain, and each model
version with its test scores and the review effort its drafts cost
(engine/labelling/loop_health.py)."""

import altair as alt
import streamlit as st

from engine.labelling.feedback import sample_rate, set_sample_rate
from engine.labelling.loop_health import loop_health
from ui.common import db, require
from ui.savings import savings_ui

require("compare")
con = db()
st.title("Loop health")
health = loop_health(con)

c = st.columns(4)
last = health["last_training"]
if last is None:
    c[0].metric("Last retrain", "never")
else:
    days = last["seconds_ago"] / 86400
    c[0].metric("Last retrain", f"{days:.1f} days ago" if days >= 1 else f"{days * 24:.1f} h ago")
c[1].metric("Feedback items", f"{health['feedback']:,}")
share = health["share_corrected"]
c[2].metric("Share corrected", "—" if share is None else f"{share:.0%}")
c[3].metric("Waiting for review", f"{health['queued']:,}")

st.subheader("Examples by source")
examples = health["examples_by_source"]
if examples.empty:
    st.caption("No examples yet.")
else:
    chart = (
        alt.Chart(examples)
        .mark_line(point=True)
        .encode(
            x=alt.X("week:T", title="week"),
            y=alt.Y("total:Q", title="examples (cumulative)"),
            color=alt.Color("source:N", title="source"),
            tooltip=["week:T", "source:N", "examples:Q", "total:Q"],
        )
    )
    st.altair_chart(chart, width="stretch")

st.subheader("Feedback")
weekly = health["feedback_by_week"]
if weekly.empty:
    st.caption("No feedback yet: ratings and corrections from Chat and sampled API requests.")
else:
    st.dataframe(weekly, hide_index=True)
with st.form("loop_sampling"):
    rate = st.slider(
        "Share of API summaries queued for review (keys that log texts only)",
        0.0, 1.0, sample_rate(con), 0.05, key="loop_sample_rate",
    )  # fmt: skip
    if st.form_submit_button("Save"):
        set_sample_rate(con, st.session_state["user"], rate)
        st.toast(f"{rate:.0%} of opted-in API summaries will be queued.")

st.subheader("Model history")
st.dataframe(health["models"], hide_index=True)
savings_ui(con)
