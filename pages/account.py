"""My account (everyone): change the password, see where the account is signed in, log out
everywhere. From the CLI (app stopped): `python -m engine users passwd|logout NAME`."""

import streamlit as st

from engine import auth
from ui.common import db, require_login
from ui.login import log_out

require_login()
con = db()
user = st.session_state["user"]
cookie = st.session_state.get("login_cookie")
st.title("My account")
st.caption(f"Signed in as **{user['name']}** ({user['role']}).")

st.subheader("Change password")
with st.form("account_password", clear_on_submit=True):
    current = st.text_input("Current password", type="password", key="account_current")
    new = st.text_input("New password (8+ characters)", type="password", key="account_new")
    again = st.text_input("New password again", type="password", key="account_again")
    if st.form_submit_button("Change password", type="primary", key="account_change"):
        try:
            if new != again:
                raise auth.AuthProblem("The two new passwords differ.")
            auth.change_password(con, user["name"], current, new, keep_cookie=cookie)
            st.success("Password changed. Your other sessions were logged out.")
        except auth.AuthProblem as e:
            st.error(str(e))

st.subheader("Where you are signed in")
st.dataframe(auth.open_sessions(con, user["name"], cookie), hide_index=True)
if st.button(
    "Log out everywhere", key="account_logout_all", help="Ends every session, this one included."
):
    log_out(con, everywhere=True)
