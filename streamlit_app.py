"""Tuneloop's frame: page config, the login gate, navigation and the sidebar status.

Run: streamlit run streamlit_app.py
"""

import streamlit as st

from engine.auth import can
from pages._login import login_gate, logout_ui
from pages._ui import db, sidebar_status

st.set_page_config(page_title="Tuneloop", page_icon="🔁", layout="wide")
user = login_gate(db())  # db() also loads the sample set into an empty store
if user is None:
    st.stop()
pages = {
    "Curate": [
        st.Page("pages/data.py", title="Data", icon="📥", default=True),
        st.Page("pages/curate.py", title="Curate", icon="✍️"),
        st.Page("pages/duplicates.py", title="Duplicates", icon="👯"),
    ],
    "Label": [
        st.Page("pages/chat.py", title="Chat", icon="💬"),
        st.Page("pages/label.py", title="Label", icon="🏷️"),
        st.Page("pages/review.py", title="Review", icon="⭐"),
        st.Page("pages/blind.py", title="Blind A/B", icon="⚖️"),
    ],
}
if can(user, "train"):
    pages["Train"] = [st.Page("pages/train.py", title="Train", icon="🏋️")]
if can(user, "compare"):
    pages["Evaluate"] = [st.Page("pages/compare.py", title="Compare", icon="📊")]
if can(user, "users"):
    pages["Admin"] = [st.Page("pages/users.py", title="Users", icon="👤")]
page = st.navigation(pages)
sidebar_status()
logout_ui()
page.run()
