"""The login gate: who is signed in, the login and first-admin forms, and the session cookie.

While nobody is signed in, streamlit_app.py registers every page's URL path to `login_page`
and hides the navigation, so any URL of the app shows only the login (or set-up) form; once
signed in, the same URL path resolves to the real page, so a deep link lands where it asked.

The browser keeps the session in an HttpOnly, SameSite=Strict cookie that the server sets
(ui/web.py): page scripts cannot read it. After a login the page gets a one-time code, which a
few lines of JavaScript (st.components.v2) post to the server's cookie route. A second,
long-lived HttpOnly cookie marks this browser as a known device of the user, which lets a
correct password through the login backoff (engine/auth.py). The cookie is signed, bound to
a server-side session that ends on logout, after 12 idle hours and after 7 days, and that
"Log out everywhere" revokes.
The signed-in user is in st.session_state["user"] ({"name", "role"}), re-checked every run.
"""

from __future__ import annotations

import hashlib

import streamlit as st

from engine import auth
from engine.paths import data_dir
from ui import web

# Posts the one-time code (or the names of cookies to clear) to the server, which answers with
# the HttpOnly cookies themselves (ui/web.py).
_COOKIE_JS = """
export default function ({ data }) {
  if (!data) return;
  fetch(data.url, {
    method: "POST", credentials: "same-origin", headers: {"Content-Type": "application/json"},
    body: JSON.stringify(data.body),
  });
}
"""
_cookie_component = st.components.v2.component("tuneloop_session_cookie", js=_COOKIE_JS)


def cookie_name(kind: str = "session") -> str:
    # Browsers share cookies across the ports of one host: one name per app port.
    return f"tuneloop_{kind}_{st.get_option('server.port')}"


def _request_cookie(kind: str) -> str | None:
    value = st.context.cookies.get(cookie_name(kind))
    return value if isinstance(value, str) else None  # AppTest has no real cookies


def check_origin():
    """Stop this session unless its WebSocket came from the app's own origin (ui/web.py's gate
    refuses such sockets first; this holds if the app is served some other way)."""
    headers = st.context.headers
    if not headers or not headers.get("Host"):  # AppTest: no browser, no socket
        return
    secure = bool(st.get_option("server.sslCertFile"))
    problem = web.origin_problem(headers.get("Origin"), headers.get("Host"), secure)
    if problem:
        st.error("This page may not open Tuneloop: open the app at its own address.")
        st.stop()


def client_address() -> str:
    """Who is asking, for throttling (ui/web.py `forwarded_client`)."""
    ip = st.context.ip_address
    ip = ip if isinstance(ip, str) else None  # AppTest has no real client
    return web.forwarded_client(ip, st.context.headers.get("X-Forwarded-For"))


def signed_in_user(con) -> dict | None:
    """The user this browser session is signed in as (from this session or the cookie the
    browser sent when the page was opened), or None."""
    cookie = st.session_state.get("login_cookie")
    if cookie is None:  # "" after a logout: the cookie the page was opened with is spent
        cookie = _request_cookie("session")
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
    """Have the server set a new session cookie (or clear a spent one). Draws nothing."""
    base = web.base_path().rstrip("/")
    code = st.session_state.get("login_cookie_code")
    if code and not web.code_pending(code):  # the browser has fetched its cookies
        del st.session_state["login_cookie_code"]
        code = None
    if code:
        data = {"url": base + web.SESSION_ROUTE, "body": {"code": code}}
        key = hashlib.sha256(code.encode()).hexdigest()[:12]  # "__" may not be in a key
    elif st.session_state.pop("login_clear_cookie", False):
        data, key = {"url": base + web.LOGOUT_ROUTE, "body": {"names": [cookie_name()]}}, "out"
    else:
        return
    _cookie_component(data=data, key=f"login_cookie_js_{key}", height=0)


def _sign_in(con, user: dict):
    cookie = auth.start_session(con, user["name"], client_address())
    st.session_state["login_cookie"] = cookie
    st.session_state["user"] = user
    device = (cookie_name("device"), auth.device_token(con, user["name"]), auth.DEVICE_DAYS * 86400)
    session = (cookie_name(), cookie, int(auth.session_limits()[1]))
    st.session_state["login_cookie_code"] = web.offer_cookies([session, device])
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
    if warning := web.plain_http_warning():
        st.error(f"⚠️ {warning}")
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
                known = auth.known_device(con, _request_cookie("device"), name.strip())
                user = auth.check_login(con, name.strip(), password, client_address(), known)
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
    st.session_state.pop("login_cookie_code", None)
    st.session_state["login_cookie"] = ""
    st.session_state["login_clear_cookie"] = True
    st.rerun()


def logout_ui(con, user: dict):
    if st.sidebar.button(f"Log out {user['name']} ({user['role']})", key="login_logout"):
        log_out(con)
