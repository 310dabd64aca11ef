"""Tuneloop's frame: page config, the login gate, navigation and the sidebar status.

Run: streamlit run streamlit_app.py   (listens on 127.0.0.1; other machines: docs/security.md)

`streamlit run` imports this file first as an ASGI app (the `app` below: ui/web.py's origin
gate and cookie routes in front of Streamlit), then runs it as the frame of every session.

st.navigation runs on every run. Until someone signs in it holds only the login form, under
every page's URL path and hidden, so no URL shows anything else and the sidebar lists nothing.
"""

from pathlib import Path

import streamlit as st

# section → (page file, title, icon, the action a user must be allowed, None: any user)
PAGES = {
    "": [("pages/home.py", "Home", "🏠", None)],
    "Curate": [
        ("pages/data.py", "Data", "📥", None),
        ("pages/curate.py", "Curate", "✍️", None),
        ("pages/duplicates.py", "Duplicates", "👯", "duplicates"),
    ],
    "Label": [
        ("pages/chat.py", "Chat", "💬", None),
        ("pages/label.py", "Label", "🏷️", None),
        ("pages/review.py", "Review", "⭐", None),
        ("pages/blind.py", "Blind A/B", "⚖️", None),
    ],
    "Train": [("pages/train.py", "Train", "🏋️", "train")],
    "Evaluate": [
        ("pages/compare.py", "Compare", "📊", "compare"),
        ("pages/loop.py", "Loop health", "🔁", "compare"),
    ],
    "Ship": [("pages/serve.py", "Serve", "🚀", "serve")],
    "Account": [
        ("pages/account.py", "My account", "🔑", None),
        ("pages/users.py", "Users", "👤", "users"),
        ("pages/audit.py", "Audit log", "📜", "users"),
    ],
}
DEFAULT = "pages/home.py"


def frame():
    from engine.auth import can
    from ui.common import db, sidebar_status
    from ui.login import check_origin, cookie_ui, login_page, logout_ui, signed_in_user

    st.set_page_config(page_title="Tuneloop", page_icon="🔁", layout="wide")
    check_origin()  # before the store is opened or the cookie read
    con = db()  # also loads the sample set into an empty store
    user = signed_in_user(con)
    cookie_ui()
    if user is None:
        gate = [
            st.Page(login_page, title="Log in", url_path=Path(path).stem, default=path == DEFAULT)
            for entries in PAGES.values()
            for path, *_ in entries
        ]
        st.navigation(gate, position="hidden").run()
    else:
        allowed = {
            section: [
                st.Page(path, title=title, icon=icon, default=path == DEFAULT)
                for path, title, icon, action in entries
                if action is None or can(user, action)
            ]
            for section, entries in PAGES.items()
        }
        page = st.navigation({section: pages for section, pages in allowed.items() if pages})
        sidebar_status()
        logout_ui(con, user)
        page.run()


if __name__ == "__main__":  # a session's script run
    frame()
else:  # imported by `streamlit run`, which then serves this App
    from streamlit.starlette import App

    from ui import web

    web.prepare_process()
    app = App(__file__, routes=web.routes(), middleware=web.middleware())
