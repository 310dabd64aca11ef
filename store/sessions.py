"""Login sessions and login attempts (engine/auth.py decides; this module only stores).

A session row is keyed by the SHA-256 of the token in the browser's cookie. Times are Unix
seconds passed in by the caller, so tests can run a fake clock.
"""

from __future__ import annotations

import duckdb
import pandas as pd

SECRET_KEY = "session_secret"


def signing_secret(con, candidate: str) -> str:
    """The install's cookie-signing secret: `candidate` the first time, the stored one after
    (read on every request, so it writes only when there is none yet)."""
    query = "SELECT value FROM settings WHERE key = ?"
    row = con.execute(query, [SECRET_KEY]).fetchone()
    if row is None:
        con.execute(
            "INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING",
            [SECRET_KEY, candidate],
        )
        row = con.execute(query, [SECRET_KEY]).fetchone()
    return row[0]


def add_session(con, token_hash: str, username: str, client: str, now: float, expires: float):
    con.execute(
        "INSERT INTO sessions (token_hash, username, client, created, last_seen, expires) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        [token_hash, username, client, now, now, expires],
    )


def get_session(con, token_hash: str) -> dict | None:
    df = con.execute("SELECT * FROM sessions WHERE token_hash = ?", [token_hash]).fetchdf()
    return None if df.empty else df.iloc[0].to_dict()


def touch_session(con, token_hash: str, now: float):
    """Move last_seen on. Best effort: two tabs sharing a cookie may touch the row at once, and
    the loser of that write conflict changes nothing that matters."""
    try:
        con.execute("UPDATE sessions SET last_seen = ? WHERE token_hash = ?", [now, token_hash])
    except duckdb.TransactionException:
        pass


def revoke_session(con, token_hash: str):
    con.execute("UPDATE sessions SET revoked = TRUE WHERE token_hash = ?", [token_hash])


def revoke_user_sessions(con, username: str, keep_hash: str | None = None) -> int:
    """Revoke every open session of a user (but `keep_hash`); return how many."""
    (n,) = con.execute(
        "UPDATE sessions SET revoked = TRUE WHERE username = ? AND NOT revoked "
        "AND token_hash IS DISTINCT FROM ?",
        [username, keep_hash],
    ).fetchone()
    return n


def list_sessions(con, username: str, now: float, idle_seconds: float) -> pd.DataFrame:
    """A user's sessions that are still open at `now`, newest first."""
    return con.execute(
        """SELECT token_hash, client, to_timestamp(created) AS started,
                  to_timestamp(last_seen) AS last_seen, to_timestamp(expires) AS expires
           FROM sessions WHERE username = $name AND NOT revoked AND expires > $now
             AND last_seen > $now - $idle
           ORDER BY created DESC""",
        {"name": username, "now": now, "idle": idle_seconds},
    ).fetchdf()


def add_attempt(con, at: float, username: str, client: str, ok: bool, refused: bool = False):
    con.execute(
        "INSERT INTO login_attempts (tried_at, username, client, ok, refused) "
        "VALUES (?, ?, ?, ?, ?)",
        [at, username, client, ok, refused],
    )


def recent_failures(con, column: str, value: str, since: float) -> tuple[int, float | None]:
    """Failed (checked) attempts for one user name or client after `since` and after its last
    success: how many, and when the last one was."""
    if column not in ("username", "client"):
        raise ValueError(f"unknown column {column!r}")
    n, last = con.execute(
        f"""SELECT count(*), max(tried_at) FROM login_attempts
            WHERE {column} = $v AND NOT ok AND NOT refused AND tried_at > $since
              AND tried_at > coalesce((SELECT max(tried_at) FROM login_attempts
                                 WHERE {column} = $v AND ok), 0)""",
        {"v": value, "since": since},
    ).fetchone()
    return n, last


def forget_attempts(con, before: float):
    con.execute("DELETE FROM login_attempts WHERE tried_at < ?", [before])
