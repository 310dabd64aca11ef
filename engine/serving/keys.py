"""API keys for the model server: create (the key is shown once), list, revoke.

A key is `tl-` and 43 random URL-safe characters (secrets.token_urlsafe(32): 256 bits). The
store keeps only its SHA-256 and its first characters, to recognise it in a list; `keys.json`
in the serve folder carries the hashes of the keys that work, and the server re-reads it within
a second or two of a change, so a revoked key stops working at once. Expiry is checked by the
server on every request. Admins only; the CLI acts as `console`.

    python -m engine keys create NAME [--expires DAYS] [--log-texts] [--rate-limit N]
    python -m engine keys list | revoke NAME
"""

from __future__ import annotations

import re
import secrets
import time

import pandas as pd

from engine.audit import record
from engine.auth import check
from engine.errors import TuneloopError
from engine.serving.folder import KEY_PREFIX, KEYS_FILE, hash_key, serve_dir, write_json
from store import serving as serving_store
from store import transaction

_NAME = re.compile(r"^[A-Za-z0-9_.@-]{2,40}$")
SHOWN_PREFIX = 8  # characters of a key kept to recognise it ("tl-AbCdE…")


def create_key(
    con,
    user: dict,
    name: str,
    expires_days: float | None = None,
    log_texts: bool = False,
    rate_limit: int | None = None,
    now: float | None = None,
) -> str:
    """A new API key called `name`; returns the key itself, which is stored nowhere."""
    check(user, "serve")
    name = name.strip()
    if not _NAME.match(name):
        raise TuneloopError(
            "A key name is 2 to 40 letters, digits or . _ @ - (say who or what uses it)."
        )
    if expires_days is not None and not 0 < expires_days <= 3650:
        raise TuneloopError("Expiry is a number of days above 0 and at most 3650 (or none).")
    if rate_limit is not None and not 1 <= rate_limit <= 100_000:
        raise TuneloopError(
            "A rate limit is 1 to 100000 requests per minute (or none: the default)."
        )
    now = time.time() if now is None else now
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    expires = None if expires_days is None else now + expires_days * 86400
    with transaction(con):
        if serving_store.get_active_key(con, name) is not None:
            raise TuneloopError(
                f"A key called {name!r} exists: revoke it first or pick another name."
            )
        serving_store.add_key(
            con, name, hash_key(key), key[:SHOWN_PREFIX], user["name"], now, expires,
            bool(log_texts), rate_limit,
        )  # fmt: skip
        record(
            con, user, "api_key_create", name,
            expires_days=expires_days, log_texts=bool(log_texts), rate_limit=rate_limit,
        )  # fmt: skip
    export_keys(con)
    return key


def revoke_key(con, user: dict, name: str, now: float | None = None):
    """Revoke the key called `name`: the server refuses it within seconds."""
    check(user, "serve")
    with transaction(con):
        if not serving_store.revoke_key(con, name, time.time() if now is None else now):
            raise TuneloopError(f"No key called {name!r} (or it is revoked already).")
        record(con, user, "api_key_revoke", name)
    export_keys(con)


def list_keys(con, include_revoked: bool = False) -> pd.DataFrame:
    """Keys newest first, with their state (active | expired | revoked); never the hashes."""
    keys = serving_store.list_keys(con, include_revoked)
    now = pd.Timestamp.now(tz="UTC")
    expired = keys["expires"].notna() & (keys["expires"] <= now)
    keys["state"] = "active"
    keys.loc[expired, "state"] = "expired"
    keys.loc[keys["revoked"].notna(), "state"] = "revoked"
    return keys


def export_keys(con, now: float | None = None) -> bool:
    """Write keys.json for the server when a serve folder exists; returns whether it did."""
    folder = serve_dir()
    if not folder.is_dir():
        return False
    keys = serving_store.usable_keys(con, time.time() if now is None else now)
    write_json(folder / KEYS_FILE, {"keys": keys})
    return True
