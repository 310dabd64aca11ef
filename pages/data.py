"""Data: import documents and summaries, clean them, see the dashboard, split and export.
Reviewers see Import (uploads only: reading files on the server is for admins) and Overview;
cleaning, splitting and exporting are for admins, and the engine refuses them to anyone else."""

import streamlit as st

from engine.auth import can
from ui.common import db, require_login
from ui.data_tabs import clean_tab, import_tab, overview_tab, split_tab

require_login()
st.title("Data")
con = db()
user = st.session_state["user"]
# tab → (what draws it, the action it needs; None: anyone signed in)
TABS = {
    "Import": (import_tab, None),
    "Clean": (clean_tab, "clean"),
    "Overview": (overview_tab, None),
    "Split & export": (split_tab, "split"),
}
shown = [name for name, (_, action) in TABS.items() if action is None or can(user, action)]
for tab, name in zip(st.tabs(shown), shown):
    with tab:
        TABS[name][0](con)
