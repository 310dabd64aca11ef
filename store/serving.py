"""API keys and the API server's request log (tables of migration m008_serving).

engine/serving decides; this module only stores. Keys are kept as SHA-256 hashes; times are
Unix seconds passed in by the caller, so tests can run a fake clock.
"""

from __future__ import annotations

import pandas as pd

# What the server writes per request (engine/serving/worker.py) → the api_requests columns.
REQUEST_COLUMNS = (
    "received", "key_name", "method", "path", "status", "model_id", "prompt_tokens",
    "completion_tokens", "latency_ms", "first_token_ms", "finish_reason", "error",
    "request_text", "response_text",
)  # fmt: skip


def add_key(
    con,
    name: str,
    key_hash: str,
    prefix: str,
    created_by: str,
    now: float,
    expires: float | None,
    log_texts: bool,
    rate_limit: int | None,
) -> int:
    return con.execute(
        "INSERT INTO api_keys (name, key_hash, prefix, created_by, created, expires, log_texts, "
        "rate_limit) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        [name, key_hash, prefix, created_by, now, expires, log_texts, rate_limit],
    ).fetchone()[0]


def get_active_key(con, name: str) -> dict | None:
    """The key called `name` that is not revoked (it may have expired)."""
    df = con.execute("SELECT * FROM api_keys WHERE name = ? AND revoked IS NULL", [name]).fetchdf()
    return None if df.empty else df.iloc[0].to_dict()


def revoke_key(con, name: str, now: float) -> int:
    """Revoke the key called `name`; returns how many rows changed (0 or 1)."""
    (n,) = con.execute(
        "UPDATE api_keys SET revoked = ? WHERE name = ? AND revoked IS NULL", [now, name]
    ).fetchone()
    return n


def list_keys(con, include_revoked: bool = False) -> pd.DataFrame:
    """Keys newest first (never their hashes): name, prefix, created_by, created, expires,
    log_texts, rate_limit, revoked, as timestamps."""
    where = "" if include_revoked else "WHERE revoked IS NULL"
    return con.execute(
        f"""SELECT name, prefix, created_by, to_timestamp(created) AS created,
                   to_timestamp(expires) AS expires, log_texts, rate_limit,
                   to_timestamp(revoked) AS revoked
            FROM api_keys {where} ORDER BY id DESC"""
    ).fetchdf()


def usable_keys(con, now: float) -> list[dict]:
    """What the server needs of every key that works at `now`: name, key_hash, expires,
    log_texts, rate_limit."""
    rows = con.execute(
        """SELECT name, key_hash, expires, log_texts, rate_limit FROM api_keys
           WHERE revoked IS NULL AND (expires IS NULL OR expires > ?) ORDER BY id""",
        [now],
    ).fetchall()
    columns = ("name", "key_hash", "expires", "log_texts", "rate_limit")
    return [dict(zip(columns, row)) for row in rows]


def log_offset(con, file_id: str) -> int:
    row = con.execute(
        "SELECT ingested_bytes FROM api_log_files WHERE file_id = ?", [file_id]
    ).fetchone()
    return row[0] if row else 0


def add_requests(con, rows: list[dict], file_id: str, offset: int):
    """Store logged requests and how far the log has been read (call inside a transaction)."""
    add_requests_only(con, rows)
    con.execute(
        "INSERT INTO api_log_files VALUES (?, ?) "
        "ON CONFLICT (file_id) DO UPDATE SET ingested_bytes = excluded.ingested_bytes",
        [file_id, offset],
    )


def finish_requests(con, rows: list[dict]):
    """Store the ends of requests whose start is stored (running): each replaces its start,
    found by when it arrived and its path, with a new id so that readers of new rows see it."""
    for row in rows:
        con.execute(
            "DELETE FROM api_requests WHERE received = ? AND path = ? "
            "AND finish_reason IN ('running', 'interrupted')",
            [row["received"], row["path"]],
        )
    add_requests_only(con, rows)


def add_requests_only(con, rows: list[dict]):
    if rows:
        marks = ", ".join("?" * len(REQUEST_COLUMNS))
        con.executemany(
            f"INSERT INTO api_requests ({', '.join(REQUEST_COLUMNS)}) VALUES ({marks})",
            [[row.get(c) for c in REQUEST_COLUMNS] for row in rows],
        )


def mark_interrupted(con, before: float | None, message: str) -> int:
    """Running requests that arrived before `before` (None: all) never finished: their
    server stopped. Returns how many."""
    (n,) = con.execute(
        "UPDATE api_requests SET finish_reason = 'interrupted', error = ? "
        "WHERE finish_reason = 'running' AND (? IS NULL OR received < ?)",
        [message, before, before],
    ).fetchone()
    return n


def running_requests(con) -> int:
    return con.execute(
        "SELECT count(*) FROM api_requests WHERE finish_reason = 'running'"
    ).fetchone()[0]


# A request failed when it was refused or answered with an error (status 400 and above), or
# when its server stopped before it finished (interrupted: no status was ever sent).
FAILED = "(status >= 400 OR finish_reason = 'interrupted')"
ANSWERED = "(status BETWEEN 100 AND 399 AND finish_reason IS DISTINCT FROM 'interrupted')"
# Times for people, all in UTC without a zone attached, so that a table and a chart (which
# draws naive times as they are) show the same clock whatever the browser's time zone.
UTC = "timezone('UTC', to_timestamp({}))"


def request_stats(con, since: float) -> dict:
    """Requests since `since`: how many, how many failed, p50 and p95 latency of the
    answered ones, and the tokens they read and wrote."""
    row = con.execute(
        f"""SELECT count(*), count(*) FILTER (WHERE {FAILED}),
                  quantile_cont(latency_ms, 0.5) FILTER (WHERE {ANSWERED}),
                  quantile_cont(latency_ms, 0.95) FILTER (WHERE {ANSWERED}),
                  coalesce(sum(prompt_tokens), 0), coalesce(sum(completion_tokens), 0)
           FROM api_requests WHERE received >= ?""",
        [since],
    ).fetchone()
    keys = ("requests", "errors", "p50_ms", "p95_ms", "prompt_tokens", "completion_tokens")
    return dict(zip(keys, row))


def requests_per_minute(con, since: float) -> pd.DataFrame:
    """Requests per minute since `since`: minute (UTC, naive), requests, errors, p50_ms."""
    return con.execute(
        f"""SELECT time_bucket(INTERVAL 1 MINUTE, {UTC.format("received")}) AS minute,
                  count(*) AS requests, count(*) FILTER (WHERE {FAILED}) AS errors,
                  quantile_cont(latency_ms, 0.5) FILTER (WHERE {ANSWERED}) AS p50_ms
           FROM api_requests WHERE received >= ? GROUP BY 1 ORDER BY 1""",
        [since],
    ).fetchdf()


def recent_requests(con, limit: int = 50) -> pd.DataFrame:
    """The newest logged requests, newest first; `received` in UTC (naive) and `result`:
    "ok 200", "⚠ 401", "⚠ interrupted" or "running"."""
    return con.execute(
        f"""SELECT {UTC.format("received")} AS received,
                   CASE WHEN finish_reason = 'interrupted' THEN '⚠ interrupted'
                        WHEN finish_reason = 'running' THEN 'running'
                        WHEN status >= 400 THEN '⚠ ' || status
                        ELSE 'ok ' || status END AS result,
                   key_name, path, status, model_id, prompt_tokens, completion_tokens,
                   latency_ms, finish_reason, error, request_text, response_text
            FROM api_requests ORDER BY received DESC, id DESC LIMIT {int(limit)}"""
    ).fetchdf()
