"""The audit log of admin actions (table `audit_log`, migration m007_audit), and the counts its
entries record before and after an action."""

from __future__ import annotations

import json

import pandas as pd


def add_entry(con, username: str, action: str, target: str | None, details: dict) -> int:
    return con.execute(
        "INSERT INTO audit_log (username, action, target, details) VALUES (?, ?, ?, ?) "
        "RETURNING id",
        [username, action, target, json.dumps(details, default=str, sort_keys=True)],
    ).fetchone()[0]


def list_entries(
    con,
    usernames: tuple[str, ...] = (),
    actions: tuple[str, ...] = (),
    search: str | None = None,
    since=None,
    until=None,
    limit: int = 1000,
) -> pd.DataFrame:
    """Entries newest first (id, logged_at, username, action, target, details), filtered by
    who, what, a text in the target or details, and a time range (`until` exclusive)."""
    where, params = ["TRUE"], []
    if usernames:
        where.append("list_contains(?, username)")
        params.append(list(usernames))
    if actions:
        where.append("list_contains(?, action)")
        params.append(list(actions))
    if search:
        where.append("(contains(lower(coalesce(target, '')), ?) OR contains(lower(details), ?))")
        params += [search.lower(), search.lower()]
    if since is not None:
        where.append("logged_at >= ?")
        params.append(since)
    if until is not None:
        where.append("logged_at < ?")
        params.append(until)
    return con.execute(
        f"""SELECT id, logged_at, username, action, target, details FROM audit_log
            WHERE {" AND ".join(where)} ORDER BY id DESC LIMIT ?""",
        [*params, limit],
    ).df()


def distinct(con, column: str) -> list[str]:
    """The user names or actions in the log, for the filters."""
    assert column in ("username", "action")
    return [r[0] for r in con.execute(f"SELECT DISTINCT {column} FROM audit_log ORDER BY 1")]


def status_counts(con, example_ids: list[int] | None = None) -> dict[str, int]:
    """Examples per status (of `example_ids`, or all of them)."""
    if example_ids is None:
        rows = con.execute("SELECT status, count(*) FROM examples GROUP BY 1").fetchall()
    else:
        rows = con.execute(
            "SELECT status, count(*) FROM examples WHERE id IN (SELECT unnest(?)) GROUP BY 1",
            [list(example_ids)],
        ).fetchall()
    return dict(sorted(rows))


def split_counts(con) -> dict[str, int]:
    """Examples per split ("none": no side yet)."""
    rows = con.execute(
        "SELECT coalesce(split, 'none'), count(*) FROM examples GROUP BY 1"
    ).fetchall()
    return dict(sorted(rows))


def store_counts(con) -> dict[str, int]:
    """How many documents and examples the store holds."""
    documents, examples = con.execute(
        "SELECT (SELECT count(*) FROM documents), (SELECT count(*) FROM examples)"
    ).fetchone()
    return {"documents": documents, "examples": examples}
