"""The login gate: who is signed in, the login and first-admin forms, and the session cookie.

While nobody is signed in, streamlit_app.py registers every page's URL path to `login_page`
and hides the navigation, so any URL of the app shows only the login (or set-up) form; once
signed in, the same URL path resolves to the real page, so a deep link lands where it asked.

The browser keeps the session in a cookie, set by a few lines of JavaScript through Streamlit's
own components API (st.components.v2): Streamlit lets the app read cookies (st.context.cookies,
from the request that opened the page) but not set them. A cookie set from JavaScript cannot
be HttpOnly, so a script injected into the page could read it; what it would get is a token
that is signed, SameSite=Strict, Secure over HTTPS, bound to a server-side session that ends
on logout, after 12 idle hours and after 7 days, and that "Log out everywhere" revokes.
The signed-in user is in st.session_state["user"] ({"name", "role"}), re-checked every run.
"""

from __future__ import annotations

import ipaddress

import streamlit as st

from engine import auth
from engine.paths import data_dir

_COOKIE_JS = """
export default function ({ data }) {
  if (!data) return;
  const secure = location.protocol === "https:" ? "; Secure" : "";
  document.cookie = `${data.name}=${data.value}; Path=/; Max-Age=${data.max_age}` +
    `; SameSite=Strict${secure}`;
}
"""
_cookie_component = st.components.v2.component("tuneloop_session_cookie", js=_COOKIE_JS)


def cookie_name() -> str:
    # Browsers share cookies across the ports of one host: one name per app port.
    return f"tuneloop_session_{st.get_option('server.port')}"


def client_address() -> str:
    """Who is asking, for throttling: the WebSocket peer, or the nearest proxy's
    X-Forwarded-For entry when the peer is a proxy on this machine."""
    ip = st.context.ip_address
    ip = ip if isinstance(ip, str) else None  # AppTest has no real client
    forwarded = (st.context.headers.get("X-Forwarded-For") or "").split(",")[-1].strip()
    try:
        local = ip is None or ipaddress.ip_address(ip.removeprefix("::ffff:")).is_loopback
    except ValueError:
        local = False
    return forwarded if local and forwarded else ip or "local"


def signed_in_user(con) -> dict | None:
    """The user this browser session is signed in as (from this session or the cookie the
    browser sent when the page was opened), or None."""
    cookie = st.session_state.get("login_cookie")
    if cookie is None:  # "" after a logout: the cookie the page was opened with is spent
        cookie = st.context.cookies.get(cookie_name())
        cookie = cookie if isinstance(cookie, str) else None  # AppTest has no real cookies
    user = auth.session_user(con, cookie)
    if user is None:
        st.session_state.pop("user", None)
        if cookie:
            st.session_state["login_cookie"] = ""
            st.session_state["login_clear_cookie"] = True
        return None
    st.session_state["login_cookie"] = cookie
    st.session_state["user"] = user
    return user


def cookie_ui():
    """Hand the session cookie to the browser (or clear a spent one). Draws nothing."""
    cookie = st.session_state.get("login_cookie")
    if cookie:
        max_age = int(auth.session_limits()[1])
        data = {"name": cookie_name(), "value": cookie, "max_age": max_age}
    elif st.session_state.pop("login_clear_cookie", False):
        data = {"name": cookie_name(), "value": "", "max_age": 0}
    else:
        return
    _cookie_component(data=data, key="login_cookie_js", height=0)


def _sign_in(con, user: dict):
    st.session_state["login_cookie"] = auth.start_session(con, user["name"], client_address())
    st.session_state["user"] = user
    st.rerun()  # the same URL path now resolves to the real page


@st.cache_resource(show_spinner=False)
def _announce_setup_token(folder: str) -> str:
    """Create the setup token and print it on the console, once per app process."""
    token = auth.ensure_setup_token(folder)
    print(
        "\n  Tuneloop has no accounts yet. To create the admin account, open the app and enter "
        f"this one-time setup token\n  (also in {folder}/{auth.SETUP_TOKEN_FILE}):\n\n"
        f"      {token}\n",
        flush=True,
    )
    return token


def login_page():
    """The only page anonymous visitors get, whatever URL they open."""
    from ui.common import db

    con = db()
    st.title("Tuneloop")
    if auth.needs_first_admin(con):
        _setup_form(con)
    else:
        auth.finish_setup(con, data_dir())  # an admin made on the CLI leaves no token behind
        _login_form(con)


def _setup_form(con):
    _announce_setup_token(str(data_dir()))
    st.info(
        "Welcome! This install has no accounts yet. Enter the one-time setup token printed in "
        "the console where Tuneloop was started (it is also in the file `setup-token` in its "
        "data folder) and choose the admin account."
    )
    with st.form("login_first_admin"):
        token = st.text_input("Setup token", type="password", key="login_setup_token")
        name = st.text_input("Admin user name", key="login_new_name")
        password = st.text_input(
            "Password (8+ characters)", type="password", key="login_new_password"
        )
        if st.form_submit_button("Create admin account", type="primary"):
            try:
                user = auth.create_first_admin(con, data_dir(), token, name.strip(), password)
            except auth.AuthProblem as e:
                st.error(str(e))
            else:
                _sign_in(con, user)


def _login_form(con):
    with st.form("login_form"):
        name = st.text_input("User name", key="login_name")
        password = st.text_input("Password", type="password", key="login_password")
        if st.form_submit_button("Log in", type="primary"):
            try:
                user = auth.check_login(con, name.strip(), password, client_address())
            except auth.AuthProblem as e:
                st.error(str(e))
                return
            if user is None:
                st.error("Wrong user name or password.")
                return
            _sign_in(con, user)


def log_out(con, everywhere: bool = False):
    """End this session (or all of this user's) and go back to the login form."""
    cookie = st.session_state.get("login_cookie")
    if everywhere and st.session_state.get("user"):
        auth.end_all_sessions(con, st.session_state["user"]["name"])
    else:
        auth.end_session(con, cookie)
    st.session_state.pop("user", None)
    st.session_state["login_cookie"] = ""
    st.session_state["login_clear_cookie"] = True
    st.rerun()


def logout_ui(con, user: dict):
    if st.sidebar.button(f"Log out {user['name']} ({user['role']})", key="login_logout"):
        log_out(con)
