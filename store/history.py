"""Edit history of examples: one row per change of a summary, status or tags (who, when, before,
after), the bulk actions ("batches") that group many rows, and the queries the Curate and Review
pages show.

Tags are kept in history as a sorted JSON list written by DuckDB (`to_json`), so a stored value
and an example's current tags compare as text. Nothing here starts a transaction: the writes
join the caller's (`engine/data/editing.py` wraps each save, revert and undo in one).
"""

from __future__ import annotations

import re

import pandas as pd

TRACKED = ("summary", "status", "tags")
_TAGS_JSON = "to_json(list_sort({}))::VARCHAR"


def as_stored(field: str, sql: str) -> str:
    """The SQL expression `sql` (a value of `field`) as history stores it."""
    return _TAGS_JSON.format(sql) if field == "tags" else sql


def from_stored(field: str, sql: str) -> str:
    """A stored history value (SQL) back as a value of `field`."""
    return f"CAST(CAST({sql} AS JSON) AS VARCHAR[])" if field == "tags" else sql


def named(sql: str, values: dict) -> dict:
    """The named parameters `sql` uses ($name), taken from `values` (DuckDB refuses extras)."""
    return {k: values[k] for k in set(re.findall(r"\$(\w+)", sql))}


def record(con, field: str, new_sql: str, where: str, values: dict):
    """One history row per example that `where` selects (alias `e`), `field` going from its
    current value to `new_sql`. `values` holds the named parameters, with user, batch, note."""
    sql = f"""INSERT INTO example_history (example_id, field, before, after, username, batch_id,
                  note)
              SELECT e.id, '{field}', {as_stored(field, f"e.{field}")},
                  {as_stored(field, new_sql)}, $user, $batch, $note
              FROM examples e WHERE {where}"""
    con.execute(sql, named(sql, values))


def record_created(con, example_id: int, summary: str | None, user: str | None):
    con.execute(
        "INSERT INTO example_history (example_id, field, before, after, username) "
        "VALUES (?, 'created', NULL, ?, ?)",
        [example_id, summary, user],
    )


def start_batch(con, action: str, user: str | None, undo_of: int | None = None) -> int:
    """A new bulk action; its id groups the history rows it writes."""
    return con.execute(
        "INSERT INTO example_batches (action, username, undo_of) VALUES (?, ?, ?) RETURNING id",
        [action, user, undo_of],
    ).fetchone()[0]


def get_batch(con, batch_id: int) -> dict | None:
    return _one(
        con,
        """SELECT b.*, (SELECT count(*) FROM example_history h WHERE h.batch_id = b.id) AS n,
               (SELECT max(u.id) FROM example_batches u WHERE u.undo_of = b.id) AS undone_by
           FROM example_batches b WHERE b.id = ?""",
        [batch_id],
    )


def recent_batches(con, limit: int = 10) -> pd.DataFrame:
    """The latest bulk actions: id, action, username, created_at, n (examples changed),
    undone (a later batch undid it)."""
    return con.execute(
        """SELECT b.id, b.action, b.username, b.created_at,
               (SELECT count(*) FROM example_history h WHERE h.batch_id = b.id) AS n,
               EXISTS (SELECT 1 FROM example_batches u WHERE u.undo_of = b.id) AS undone
           FROM example_batches b ORDER BY b.id DESC LIMIT ?""",
        [limit],
    ).fetchdf()


def example_history(con, example_id: int, limit: int = 50) -> pd.DataFrame:
    """An example's changes, newest first: id, field, before, after, username, changed_at,
    batch_id, note."""
    return con.execute(
        """SELECT id, field, before, after, username, changed_at, batch_id, note
           FROM example_history WHERE example_id = ? ORDER BY id DESC LIMIT ?""",
        [example_id, limit],
    ).fetchdf()


def get_change(con, history_id: int) -> dict | None:
    return _one(con, "SELECT * FROM example_history WHERE id = ?", [history_id])


def current_value(con, example_id: int, field: str) -> str | None:
    """The example's `field` now, written as history writes it."""
    assert field in TRACKED
    rows = con.execute(
        f"SELECT {as_stored(field, f'e.{field}')} FROM examples e WHERE e.id = ?", [example_id]
    ).fetchall()  # fetchall: a half-read result blocks the connection's next register()
    return rows[0][0] if rows else None


def _one(con, sql: str, params: list) -> dict | None:
    """One row as a dict of plain Python values (a NULL stays None)."""
    cur = con.execute(sql, params)
    rows = cur.fetchall()  # fetchall: a half-read result blocks the connection's next register()
    return dict(zip([c[0] for c in cur.description], rows[0])) if rows else None
