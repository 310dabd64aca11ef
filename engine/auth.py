"""Accounts, first access, throttled logins and server-side sessions.

Roles: `admin` can do everything; `reviewer` can label, review, curate and chat but cannot
delete data, train, deploy or manage accounts.

First access works like Jupyter's: a fresh install (no accounts) writes a one-time setup token
to `<data folder>/setup-token` (mode 0600) and the app prints it on its console; the admin
account can only be created with it, and the token is deleted once the admin exists. Or create
the admin from the CLI before the first start: `python -m engine users add NAME --role admin`.

A login starts a session: a random token, signed with the install's secret (itsdangerous) in
the browser's cookie, and only its SHA-256 in the `sessions` table, so revoking the row ends it
everywhere. Sessions end after TUNELOOP_SESSION_IDLE_HOURS without use (default 12) and
TUNELOOP_SESSION_DAYS after login whatever the activity (default 7).

Logins are throttled per user name and per client: after 5 failures in a row (20 for a client)
each try waits 2, 4, 8 … s after the last failure, up to 15 min; unknown names cost the same
bcrypt check. Loopback clients have no client bucket (every local browser shares the address),
and a browser the user logged in from before (a signed "known device" cookie, `device_token`)
is not held by the user's backoff, so a stranger's guesses cannot lock the owner out.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import re
import secrets
import time
from pathlib import Path

import bcrypt

from engine.audit import record
from engine.errors import TuneloopError
from store import sessions as sessions_store
from store import users as users_store

# Reviewers never see which model wrote which summary (Compare), so blind A/B stays blind.
ADMIN_ONLY = ("train", "deploy", "delete", "users", "promote", "compare", "import_path")
# What changes data in bulk, or trains and ships: admins only, checked by the engine functions
# themselves (`check`), not only by the pages. What's left for reviewers: "login", "label",
# "review", "edit" (one example), "vote", "chat".
ADMIN_ONLY += ("bulk_edit", "duplicates", "split", "clean", "export", "evaluate", "queues")
ADMIN_ONLY += ("export_model",)  # the weights and the model card leave the app
ADMIN_ONLY += ("serve",)  # the API server and its keys: the model answers the network
# The CLI's user: it runs as the machine's owner, who is trusted (and who can read the database
# file anyway). One name for it everywhere (imports by any path, audit entries, promotions).
CONSOLE = {"name": "console", "role": "admin"}
# Words for refusals: "Your account cannot <…>".
ACTION_WORDS = {
    "import_path": "import by path or by dataset name (upload the files instead)",
    "bulk_edit": "change examples in bulk or undo a bulk action",
    "duplicates": "find or resolve duplicates",
    "split": "split the examples",
    "clean": "clean documents",
    "export": "freeze or export a dataset version",
    "train": "start training runs or sweeps",
    "evaluate": "start evaluations",
    "compare": "compare models or open a blind A/B review",
    "promote": "promote a model to production",
    "serve": "run the API server or manage API keys",
    "users": "manage accounts or read the audit log",
    "delete": "delete data",
    "queues": "change the labelling order or the share of API traffic reviewed",
}
_NAME = re.compile(r"^[A-Za-z0-9_.@-]{2,40}$")
MIN_PASSWORD = 8
SETUP_TOKEN_FILE = "setup-token"
# A bcrypt hash of a throw-away password at the cost gensalt() uses (12): unknown user names are
# checked against it, so they take as long as known ones. Never hash a new one per request.
DUMMY_HASH = b"$2b$12$KC6khGdH1iMky/zTllZGKOO.pEyCW.gOUG09pnHDtKpB7FMpDXydG"
FREE_FAILURES = {"username": 5, "client": 20}  # failures in a row before the backoff starts
MAX_BACKOFF = 15 * 60  # seconds
FORGET_AFTER = 24 * 3600  # failures older than this no longer count
_SALT, _DEVICE_SALT = "tuneloop-session", "tuneloop-device"
DEVICE_DAYS = 180  # how long a browser stays a known device of its user


class AuthProblem(TuneloopError):
    """A message for people: why an account could not be created or changed, or login failed."""


class PermissionDenied(TuneloopError):
    """The acting user's role may not do this (or nobody is signed in); nothing was changed."""


class TooManyAttempts(AuthProblem):
    def __init__(self, retry_after: float):
        self.retry_after = max(1, int(retry_after + 0.999))
        super().__init__(f"Too many attempts; try again in {self.retry_after} s.")


def hash_password(password: str) -> str:
    return bcrypt.hashpw(password.encode("utf-8"), bcrypt.gensalt()).decode("ascii")


def _check_new_password(password: str):
    if len(password or "") < MIN_PASSWORD:
        raise AuthProblem(f"A password needs at least {MIN_PASSWORD} characters.")


def _check_new_account(con, name: str, password: str, role: str):
    if not _NAME.match(name or ""):
        raise AuthProblem("A user name is 2–40 letters, digits or . _ @ - (no spaces).")
    _check_new_password(password)
    if role not in users_store.ROLES:
        raise AuthProblem(f"Unknown role {role!r}; use admin or reviewer.")
    if users_store.get_user(con, name):
        raise AuthProblem(f"There is already a user called {name!r}.")


def create_user(
    con, name: str, password: str, role: str = "reviewer", actor: dict | None = CONSOLE
):
    """Add an account; `actor`: the admin adding it (CONSOLE: the CLI). Audited."""
    check(actor, "users")
    _check_new_account(con, name, password, role)
    users_store.add_user(con, name, hash_password(password), role)
    record(con, actor, "user_add", name, role=role)


def can(user: dict | None, action: str) -> bool:
    """Whether the user may do `action` (one of ADMIN_ONLY, or anything else a reviewer may)."""
    if user is None:
        return False
    return user["role"] == "admin" or action not in ADMIN_ONLY


def check(user: dict | None, action: str):
    """Raise PermissionDenied unless `user` may do `action`. Engine functions that change data
    call this first, with the acting user: the web app's signed-in user, or CONSOLE."""
    if user is None:
        raise PermissionDenied("Please log in first.")
    if not can(user, action):
        what = ACTION_WORDS.get(action, action.replace("_", " "))
        raise PermissionDenied(f"Your account ({user['role']}) cannot {what}: ask an admin.")


def on_behalf_of(name: str | None) -> dict:
    """The app's own background work continuing an admin's action that was checked when it
    started (a sweep's next trial, the evaluations after a training run): trusted like the
    console, recorded under the name of the person who started it."""
    return {"name": name or CONSOLE["name"], "role": "admin"}


# --- first access -----------------------------------------------------------------------------


def needs_first_admin(con) -> bool:
    return users_store.count_users(con) == 0


def ensure_setup_token(folder: Path) -> str:
    """The one-time setup token, created (readable by this OS user only) when missing."""
    path = Path(folder) / SETUP_TOKEN_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    token = secrets.token_urlsafe(24)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return token


def create_first_admin(con, folder: Path, token: str, name: str, password: str) -> dict:
    """Create the admin account of a fresh install, given the setup token; delete the token."""
    path = Path(folder) / SETUP_TOKEN_FILE
    expected = path.read_text().strip() if path.exists() else ""
    if not expected or not hmac.compare_digest(token.strip().encode(), expected.encode()):
        raise AuthProblem(
            "Wrong setup token: copy it from the console where Tuneloop was started, or from "
            f"the file {SETUP_TOKEN_FILE} in its data folder."
        )
    _check_new_account(con, name, password, "admin")
    if not users_store.add_first_admin(con, name, hash_password(password)):
        raise AuthProblem("The admin account already exists: log in instead.")
    finish_setup(con, folder)
    record(con, name, "user_add", name, role="admin", with_setup_token=True)
    return {"name": name, "role": "admin"}


def finish_setup(con, folder: Path):
    """Delete the setup token once an account exists (also after `users add` on the CLI)."""
    if not needs_first_admin(con):
        (Path(folder) / SETUP_TOKEN_FILE).unlink(missing_ok=True)


# --- logins ------------------------------------------------------------------------------------


def _loopback(client: str) -> bool:
    try:
        return client == "local" or ipaddress.ip_address(client.removeprefix("::ffff:")).is_loopback
    except ValueError:
        return False


def login_wait(con, name: str, client: str, now=None, known_device: bool = False) -> float:
    """Seconds until this user name and client may try again (0: now). A loopback client has
    no client bucket, and a known device of the user no user bucket (see the docstring)."""
    now = time.time() if now is None else now
    wait = 0.0
    buckets = [] if known_device else [("username", name)]
    buckets += [] if _loopback(client) else [("client", client)]
    for column, value in buckets:
        failures, last = sessions_store.recent_failures(con, column, value, now - FORGET_AFTER)
        free = FREE_FAILURES[column]
        if failures >= free:
            delay = min(2 ** (failures - free + 1), MAX_BACKOFF)
            wait = max(wait, last + delay - now)
    return wait


def check_login(
    con, name: str, password: str, client: str = "local", known_device=False, now=None
) -> dict | None:
    """The user (name, role) if the password matches, else None. Raises TooManyAttempts while
    the backoff runs, and AuthProblem for a disabled account (told only with the right
    password). `known_device`: this browser holds the user's `device_token`."""
    now = time.time() if now is None else now
    name = name or ""
    wait = login_wait(con, name, client, now, known_device)
    if wait > 0:
        sessions_store.add_attempt(con, now, name, client, ok=False, refused=True)
        raise TooManyAttempts(wait)
    user = users_store.get_user(con, name)
    stored = user["password_hash"].encode() if user else DUMMY_HASH
    ok = bcrypt.checkpw((password or "").encode("utf-8"), stored) and user is not None
    ok_and_enabled = ok and not user["disabled"]
    sessions_store.add_attempt(con, now, name, client, ok=ok_and_enabled)
    sessions_store.forget_attempts(con, now - FORGET_AFTER)
    if ok and user["disabled"]:
        raise AuthProblem("This account is disabled: ask an admin.")
    return {"name": user["name"], "role": user["role"]} if ok else None


# --- sessions ----------------------------------------------------------------------------------


def session_limits() -> tuple[float, float]:
    """(idle, absolute) session lifetimes in seconds, from the environment."""
    idle = float(os.environ.get("TUNELOOP_SESSION_IDLE_HOURS", "12")) * 3600
    absolute = float(os.environ.get("TUNELOOP_SESSION_DAYS", "7")) * 86400
    return idle, absolute


def _serializer(con):
    from itsdangerous import URLSafeTimedSerializer

    return URLSafeTimedSerializer(sessions_store.signing_secret(con, secrets.token_hex(32)), _SALT)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _token(con, cookie: str | None) -> str | None:
    """The session token inside a cookie value, if its signature is good and not too old."""
    from itsdangerous import BadSignature

    if not cookie:
        return None
    try:
        return _serializer(con).loads(cookie, max_age=session_limits()[1])
    except BadSignature:  # also SignatureExpired
        return None


def start_session(con, name: str, client: str = "local", now: float | None = None) -> str:
    """Open a session for a user who just proved who they are; return the cookie value."""
    now = time.time() if now is None else now
    token = secrets.token_urlsafe(32)
    expires = now + session_limits()[1]
    sessions_store.add_session(con, _token_hash(token), name, client, now, expires)
    return _serializer(con).dumps(token)


def session_user(con, cookie: str | None, now: float | None = None) -> dict | None:
    """The user (name, role) a cookie signs in, or None when it is missing, forged, expired,
    revoked, or its account is disabled or gone. Counts as activity for the idle expiry."""
    now = time.time() if now is None else now
    token = _token(con, cookie)
    row = sessions_store.get_session(con, _token_hash(token)) if token else None
    idle, _ = session_limits()
    if row is None or row["revoked"] or now >= row["expires"] or now - row["last_seen"] > idle:
        return None
    user = users_store.get_user(con, row["username"])
    if user is None or user["disabled"]:
        return None
    if now - row["last_seen"] > 60:  # one write a minute per session is enough
        sessions_store.touch_session(con, row["token_hash"], now)
    return {"name": user["name"], "role": user["role"]}


def device_token(con, name: str) -> str:
    """A signed mark, kept by a browser the user logged in from (see the docstring)."""
    return _serializer(con).dumps(name, salt=_DEVICE_SALT)


def known_device(con, cookie: str | None, name: str) -> bool:
    """Whether `cookie` is a device token of `name` that is not too old."""
    from itsdangerous import BadSignature

    if not cookie or not name:
        return False
    try:
        signed = _serializer(con).loads(cookie, salt=_DEVICE_SALT, max_age=DEVICE_DAYS * 86400)
    except BadSignature:
        return False
    return hmac.compare_digest(str(signed), name)


def end_session(con, cookie: str | None):
    token = _token(con, cookie)
    if token:
        sessions_store.revoke_session(con, _token_hash(token))


def end_all_sessions(con, name: str, keep_cookie: str | None = None) -> int:
    """Log a user out everywhere (but the session of `keep_cookie`); return how many ended."""
    token = _token(con, keep_cookie)
    return sessions_store.revoke_user_sessions(con, name, _token_hash(token) if token else None)


def open_sessions(con, name: str, current_cookie: str | None = None, now=None):
    """A user's open sessions (client, started, last seen, expires, this one?)."""
    now = time.time() if now is None else now
    df = sessions_store.list_sessions(con, name, now, session_limits()[0])
    token = _token(con, current_cookie)
    df.insert(0, "this session", df.pop("token_hash") == (_token_hash(token) if token else ""))
    return df


# --- account management ------------------------------------------------------------------------


def list_accounts(con, now: float | None = None):
    now = time.time() if now is None else now
    return users_store.list_users(con, now, session_limits()[0])


def change_password(con, name: str, current: str, new: str, keep_cookie: str | None = None):
    """A user changes their own password; their other sessions end."""
    user = users_store.get_user(con, name)
    if user is None or not bcrypt.checkpw((current or "").encode(), user["password_hash"].encode()):
        raise AuthProblem("The current password is wrong.")
    _check_new_password(new)
    users_store.set_password_hash(con, name, hash_password(new))
    end_all_sessions(con, name, keep_cookie)


def _target(con, actor: dict | None, name: str, what: str) -> dict:
    """The account an admin (or CONSOLE, the CLI) acts on, after the rules: admins only, never
    yourself, never the last active admin."""
    check(actor, "users")
    user = users_store.get_user(con, name)
    if user is None:
        raise AuthProblem(f"There is no user called {name!r}.")
    if name == actor["name"] and what in ("disable", "delete"):
        raise AuthProblem(f"You cannot {what} your own account.")
    last_admin = user["role"] == "admin" and not user["disabled"]
    if what in ("disable", "delete") and last_admin and users_store.count_active_admins(con) <= 1:
        raise AuthProblem(f"Cannot {what} {name}: it is the last admin account.")
    return user


def reset_password(con, actor: dict | None, name: str, new: str):
    """An admin sets a user's password; the user's sessions end."""
    _target(con, actor, name, "reset")
    _check_new_password(new)
    users_store.set_password_hash(con, name, hash_password(new))
    record(con, actor, "user_password", name, sessions_ended=end_all_sessions(con, name))


def set_disabled(con, actor: dict | None, name: str, disabled: bool):
    """Disable (sessions end, logins refused) or enable an account."""
    _target(con, actor, name, "disable" if disabled else "enable")
    users_store.set_disabled(con, name, disabled)
    ended = end_all_sessions(con, name) if disabled else 0
    record(con, actor, "user_disable" if disabled else "user_enable", name, sessions_ended=ended)


def log_out_user(con, actor: dict | None, name: str) -> int:
    """An admin ends every session of a user; returns how many."""
    _target(con, actor, name, "log out")
    ended = end_all_sessions(con, name)
    record(con, actor, "user_logout", name, sessions_ended=ended)
    return ended


def delete_user(con, actor: dict | None, name: str):
    """Delete an account (what it did stays, under its name); its sessions end."""
    user = _target(con, actor, name, "delete")
    ended = end_all_sessions(con, name)
    users_store.delete_user(con, name)
    record(con, actor, "user_delete", name, role=user["role"], sessions_ended=ended)
