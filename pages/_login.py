"""The login gate: the first visit to a fresh install creates the admin account; later visits
log in. The signed-in user lives in st.session_state["user"] ({"name", "role"})."""

from __future__ import annotations

import streamlit as st

from engine.auth import AuthProblem, check_login, create_user, needs_first_admin


def current_user() -> dict | None:
    return st.session_state.get("user")


def login_gate(con) -> dict | None:
    """Draw the login (or first-admin) form when nobody is signed in; return the user."""
    if current_user():
        return current_user()
    st.title("Tuneloop")
    if needs_first_admin(con):
        st.info("Welcome! Create the admin account for this Tuneloop install.")
        with st.form("login_first_admin"):
            name = st.text_input("Admin user name", key="login_new_name")
            password = st.text_input(
                "Password (8+ characters)", type="password", key="login_new_password"
            )
            if st.form_submit_button("Create admin account", type="primary"):
                try:
                    create_user(con, name.strip(), password, "admin")
                    st.session_state["user"] = {"name": name.strip(), "role": "admin"}
                    st.rerun()
                except AuthProblem as e:
                    st.error(str(e))
        return None
    with st.form("login_form"):
        name = st.text_input("User name", key="login_name")
        password = st.text_input("Password", type="password", key="login_password")
        if st.form_submit_button("Log in", type="primary"):
            user = check_login(con, name.strip(), password)
            if user:
                st.session_state["user"] = user
                st.rerun()
            st.error("Wrong user name or password.")
    return None


def logout_ui():
    user = current_user()
    if user and st.sidebar.button(f"Log out {user['name']} ({user['role']})", key="login_logout"):
        del st.session_state["user"]
        st.rerun()
