"""Data: import documents and summaries, clean them, see the dashboard, split and export."""

import streamlit as st

from ui.data_tabs import clean_tab, import_tab, overview_tab, split_tab
from ui.common import db, require_login

require_login()
st.title("Data")
con = db()
tabs = st.tabs(["Import", "Clean", "Overview", "Split & export"])
with tabs[0]:
    import_tab(con)
with tabs[1]:
    clean_tab(con)
with tabs[2]:
    overview_tab(con)
with tabs[3]:
    split_tab(con)
