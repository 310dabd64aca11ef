"""Reviewer and admin accounts. Passwords arrive here already hashed (engine/auth.py)."""

from __future__ import annotations

import pandas as pd

ROLES = ("admin", "reviewer")


def add_user(con, name: str, password_hash: str, role: str):
    con.execute(
        "INSERT INTO users (name, password_hash, role) VALUES (?, ?, ?)",
        [name, password_hash, role],
    )


def get_user(con, name: str) -> dict | None:
    row = con.execute(
        "SELECT name, password_hash, role FROM users WHERE name = ?", [name]
    ).fetchone()
    return None if row is None else {"name": row[0], "password_hash": row[1], "role": row[2]}


def set_password_hash(con, name: str, password_hash: str):
    con.execute("UPDATE users SET password_hash = ? WHERE name = ?", [password_hash, name])


def count_users(con) -> int:
    return con.execute("SELECT count(*) FROM users").fetchone()[0]


def list_users(con) -> pd.DataFrame:
    return con.execute("SELECT name, role, created_at FROM users ORDER BY name").fetchdf()
