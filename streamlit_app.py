"""Tuneloop's frame: page config, navigation and the sidebar status. Run: streamlit run streamlit_app.py"""

import streamlit as st

from pages._ui import db, sidebar_status

st.set_page_config(page_title="Tuneloop", page_icon="🔁", layout="wide")
db()  # opens the store (loading the sample set into an empty one) before any page draws
page = st.navigation(
    {
        "Curate": [
            st.Page("pages/data.py", title="Data", icon="📥", default=True),
            st.Page("pages/curate.py", title="Curate", icon="✍️"),
            st.Page("pages/duplicates.py", title="Duplicates", icon="👯"),
        ],
    }
)
sidebar_status()
page.run()
