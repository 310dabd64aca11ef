"""Users (admins only): reviewer and admin accounts. From the CLI:
`python -m engine users add NAME --role reviewer` (asks for the password)."""

import streamlit as st

from engine.auth import AuthProblem, create_user
from pages._ui import db, require
from store import users as users_store

require("users")
con = db()
st.title("Users")
st.dataframe(users_store.list_users(con), hide_index=True)
with st.form("users_add", clear_on_submit=True):
    c = st.columns(3)
    name = c[0].text_input("User name", key="users_name")
    password = c[1].text_input("Password (8+ characters)", type="password", key="users_password")
    role = c[2].selectbox("Role", users_store.ROLES[::-1], key="users_role")
    if st.form_submit_button("Add user", type="primary"):
        try:
            create_user(con, name.strip(), password, role)
            st.success(f"Added {name.strip()} ({role}).")
        except AuthProblem as e:
            st.error(str(e))
