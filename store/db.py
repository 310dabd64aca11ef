"""DuckDB connection handling and migrations.

`connect(path)` opens (and creates) the app's database file; `migrate(con)` applies the
append-only list of named migrations in `store/migrations.py`, each in one transaction with its
record in `_migrations`. DuckDB allows one read-write process per file, so only the app (or one
CLI command at a time) opens it; background jobs read exported snapshots instead.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import duckdb

from store.migrations import MIGRATIONS


class StoreUnavailable(RuntimeError):
    """The database file cannot be opened: held by another process, or the folder is read-only.
    The message names the path, so it is for the console and the CLI, not for web pages."""


def _why_unavailable(path: Path, error: Exception) -> str:
    text = str(error)
    if "lock" in text.lower():
        return (
            f"Cannot open the database {path}: another process holds it. Stop the other "
            "Tuneloop app or CLI command that uses this data folder, then retry."
        )
    writable = os.access(path.parent, os.W_OK) and (not path.exists() or os.access(path, os.W_OK))
    if not writable:
        return (
            f"Cannot open the database {path}: the data folder is read-only for this user. "
            "Point TUNELOOP_HOME at a folder you can write, or fix its permissions."
        )
    return f"Cannot open the database {path}: {text}"


def connect(path: str | Path) -> duckdb.DuckDBPyConnection:
    """Open the database at `path` (":memory:" for a throw-away one) and bring it up to date."""
    if str(path) != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    try:
        con = duckdb.connect(str(path))
    except duckdb.IOException as e:
        raise StoreUnavailable(_why_unavailable(Path(path), e)) from e
    migrate(con)
    return con


def migrate(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Apply the migrations not yet recorded; return the names applied."""
    con.execute(
        "CREATE TABLE IF NOT EXISTS _migrations (name VARCHAR PRIMARY KEY, "
        "applied_at TIMESTAMP DEFAULT current_timestamp)"
    )
    done = {name for (name,) in con.execute("SELECT name FROM _migrations").fetchall()}
    applied = []
    for fn in MIGRATIONS:
        if fn.__name__ in done:
            continue
        with transaction(con):
            fn(con)
            con.execute("INSERT INTO _migrations (name) VALUES (?)", [fn.__name__])
        applied.append(fn.__name__)
    return applied


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection):
    """All-or-nothing: a failure inside rolls back everything done in the block."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")
