"""Audit log (admins): who did which admin action, when, on what, with the counts before and
after: bulk changes and their undo, duplicate resolution, splits, cleaning, imports, exports,
training, evaluations, blind A/B reviews, promotions and account management. Filter by who,
what, a date range and a text in the target or details; pick a row to read its details."""

import datetime as dt
import json

import streamlit as st

from engine.audit import ACTIONS, entries, filter_values
from ui.common import db, require

require("users")
con = db()
st.title("Audit log")

people, actions = filter_values(con)
c = st.columns([2, 3, 2, 2])
who = c[0].multiselect("Who", people, key="audit_who")
what = c[1].multiselect(
    "What", actions, format_func=lambda a: f"{a}: {ACTIONS.get(a, '')}", key="audit_what"
)
search = c[2].text_input("Target or details contain", key="audit_search")
today = dt.date.today()
days = c[3].date_input("Between", (today - dt.timedelta(days=30), today), key="audit_days")
since = until = None
if isinstance(days, tuple) and len(days) == 2:  # a range still being picked has one date
    since, until = days[0], days[1] + dt.timedelta(days=1)

log = entries(con, tuple(who), tuple(what), search.strip() or None, since, until)
st.caption(f"{len(log):,} entries, newest first (at most 1,000: narrow the filters for older).")
if log.empty:
    st.info("No entries match.")
    st.stop()
shown = log.assign(details=[json.dumps(d, sort_keys=True) for d in log["details"]])
picked = st.dataframe(
    shown[["logged_at", "username", "action", "target", "details"]],
    hide_index=True,
    on_select="rerun",
    selection_mode="single-row",
    column_config={
        "logged_at": st.column_config.DatetimeColumn("When", format="YYYY-MM-DD HH:mm:ss"),
        "username": "Who",
        "action": "What",
        "target": "On",
        "details": "Details",
    },
    key="audit_table",
)
rows = picked.selection.rows if picked else []
if rows:
    entry = log.iloc[rows[0]]
    st.subheader(f"Entry {entry['id']}")
    st.json(entry["details"])
