"""Accounts: bcrypt-hashed passwords and two roles.

`admin` can do everything; `reviewer` can label, review and chat but cannot delete data, train
or deploy. The first visit to a fresh install creates the admin account (see streamlit_app.py);
more accounts come from the Users page or `python -m engine users add NAME --role reviewer`.
"""

from __future__ import annotations

import re

import bcrypt

from store import users as users_store

# Reviewers never see which model wrote which summary (Compare), so blind A/B stays blind.
ADMIN_ONLY = ("train", "deploy", "delete", "users", "promote", "compare")
_NAME = re.compile(r"^[A-Za-z0-9_.@-]{2,40}$")
MIN_PASSWORD = 8


class AuthProblem(ValueError):
    """A message for people: why an account could not be created or a login failed."""


def hash_password(password: str) -> str:
    return bcrypt.hashpw(password.encode("utf-8"), bcrypt.gensalt()).decode("ascii")


def create_user(con, name: str, password: str, role: str = "reviewer"):
    if not _NAME.match(name or ""):
        raise AuthProblem("A user name is 2–40 letters, digits or . _ @ - (no spaces).")
    if len(password or "") < MIN_PASSWORD:
        raise AuthProblem(f"A password needs at least {MIN_PASSWORD} characters.")
    if role not in users_store.ROLES:
        raise AuthProblem(f"Unknown role {role!r}; use admin or reviewer.")
    if users_store.get_user(con, name):
        raise AuthProblem(f"There is already a user called {name!r}.")
    users_store.add_user(con, name, hash_password(password), role)


def check_login(con, name: str, password: str) -> dict | None:
    """The user (name, role) if the password matches, else None."""
    user = users_store.get_user(con, name or "")
    if user is None:
        bcrypt.checkpw(b"x", hash_password("timing-equaliser").encode())  # same cost
        return None
    if not bcrypt.checkpw((password or "").encode("utf-8"), user["password_hash"].encode()):
        return None
    return {"name": user["name"], "role": user["role"]}


def can(user: dict | None, action: str) -> bool:
    """Whether the user may do `action` (one of ADMIN_ONLY, or anything else a reviewer may)."""
    if user is None:
        return False
    return user["role"] == "admin" or action not in ADMIN_ONLY


def needs_first_admin(con) -> bool:
    return users_store.count_users(con) == 0
