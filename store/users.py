"""Reviewer and admin accounts. Passwords arrive here already hashed (engine/auth.py)."""

from __future__ import annotations

import duckdb
import pandas as pd

from store.db import transaction

ROLES = ("admin", "reviewer")
# The settings row the first admin claims: a primary key both of two racing set-ups write, so
# DuckDB commits one and refuses the other (a check for "no users yet" alone would pass in both
# transactions, which see the same snapshot).
SETUP_KEY = "setup_admin"


def add_user(con, name: str, password_hash: str, role: str):
    con.execute(
        "INSERT INTO users (name, password_hash, role, password_changed_at) "
        "VALUES (?, ?, ?, current_timestamp)",
        [name, password_hash, role],
    )


def add_first_admin(con, name: str, password_hash: str) -> bool:
    """Create the first account (an admin) unless any account exists or another set-up won the
    race; return whether this call created it."""
    try:
        with transaction(con):
            if count_users(con):
                raise _Taken
            con.execute("INSERT INTO settings (key, value) VALUES (?, ?)", [SETUP_KEY, name])
            add_user(con, name, password_hash, "admin")
    except (_Taken, duckdb.ConstraintException, duckdb.TransactionException):
        return False  # the loser of a race fails on the settings key, at insert or at commit
    return True


class _Taken(Exception):
    pass


def get_user(con, name: str) -> dict | None:
    row = con.execute(
        "SELECT name, password_hash, role, disabled FROM users WHERE name = ?", [name]
    ).fetchone()
    if row is None:
        return None
    return {"name": row[0], "password_hash": row[1], "role": row[2], "disabled": row[3]}


def set_password_hash(con, name: str, password_hash: str):
    con.execute(
        "UPDATE users SET password_hash = ?, password_changed_at = current_timestamp "
        "WHERE name = ?",
        [password_hash, name],
    )


def set_disabled(con, name: str, disabled: bool):
    con.execute("UPDATE users SET disabled = ? WHERE name = ?", [disabled, name])


def delete_user(con, name: str):
    con.execute("DELETE FROM users WHERE name = ?", [name])


def count_users(con) -> int:
    return con.execute("SELECT count(*) FROM users").fetchone()[0]


def count_active_admins(con) -> int:
    return con.execute(
        "SELECT count(*) FROM users WHERE role = 'admin' AND NOT disabled"
    ).fetchone()[0]


def list_users(con, now: float, idle_seconds: float) -> pd.DataFrame:
    """Every account with its state and how many sessions it has open at `now`."""
    return con.execute(
        """SELECT name, role, disabled, created_at, password_changed_at,
                  (SELECT count(*) FROM sessions s WHERE s.username = users.name
                   AND NOT s.revoked AND s.expires > $now AND s.last_seen > $now - $idle
                  ) AS open_sessions
           FROM users ORDER BY name""",
        {"now": now, "idle": idle_seconds},
    ).fetchdf()
