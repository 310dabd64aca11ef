"""Users (admins only): add accounts, reset a password, disable or enable, log a user out
everywhere, delete. From the CLI (app stopped): `python -m engine users
add|passwd|disable|enable|delete|logout|list NAME`."""

import streamlit as st

from engine import auth
from store import users as users_store
from ui.common import db, require

require("users")
con = db()
admin = st.session_state["user"]


def act(done: str, fn, *args):
    """Do one account action, then redraw the page with its result (act first, then draw)."""
    try:
        fn(con, *args)
    except (auth.AuthProblem, auth.PermissionDenied) as e:
        st.error(str(e))
        return
    st.session_state["users_done"] = done
    st.rerun()


st.title("Users")
if done := st.session_state.pop("users_done", None):
    st.toast(done, icon="✅")
with st.form("users_add", clear_on_submit=True):
    c = st.columns(3)
    name = c[0].text_input("User name", key="users_name")
    password = c[1].text_input("Password (8+ characters)", type="password", key="users_password")
    role = c[2].selectbox("Role", users_store.ROLES[::-1], key="users_role")
    if st.form_submit_button("Add user", type="primary", key="users_add_submit"):
        act(
            f"Added {name.strip()} ({role}).", auth.create_user, name.strip(), password, role, admin
        )
accounts = auth.list_accounts(con)
st.dataframe(accounts, hide_index=True)

st.subheader("Manage an account")
who = st.selectbox("Account", accounts["name"].tolist(), key="users_pick")
if who:
    disabled = bool(accounts.loc[accounts["name"] == who, "disabled"].iloc[0])
    c = st.columns(3)
    if disabled and c[0].button("Enable", key="users_enable"):
        act(f"Enabled {who}.", auth.set_disabled, admin, who, False)
    if not disabled and c[0].button("Disable", key="users_disable", help="Its sessions end."):
        act(f"Disabled {who}.", auth.set_disabled, admin, who, True)
    if c[1].button("Log out everywhere", key="users_logout"):
        act(f"Logged {who} out everywhere.", auth.log_out_user, admin, who)
    with c[2].popover("Delete"):
        st.write(f"Delete the account {who}? What it did stays, under its name.")
        if st.button(f"Delete {who}", type="primary", key="users_delete"):
            act(f"Deleted {who}.", auth.delete_user, admin, who)
    with st.form("users_reset", clear_on_submit=True):
        new = st.text_input(
            f"New password for {who} (8+ characters)", type="password", key="users_new_password"
        )
        if st.form_submit_button("Reset password", key="users_reset_submit"):
            act(
                f"Reset {who}'s password; their sessions ended.",
                auth.reset_password,
                admin,
                who,
                new,
            )
