"""The feedback queue (table `feedback`, migration m009_feedback): ratings and corrections of
models' answers from Chat and sampled API requests, reviewed into examples; and the queries of
the Loop page. engine/labelling/feedback.py collects, feedback_review.py decides and
loop_health.py sums up; this module only stores."""

from __future__ import annotations

import pandas as pd

_FIELDS = ("rating", "corrected", "proposed")  # what the asker may change while it is queued


def chat_message(con, message_id: int) -> dict | None:
    """A chat message (id, username, conversation, role, content, model_id) with the user
    message it answers (`asked`: the latest user message before it in its conversation)."""
    row = con.execute(
        """SELECT m.id, m.username, m.conversation, m.role, m.content, m.model_id,
                  (SELECT q.content FROM chat_messages q WHERE q.username = m.username
                   AND q.conversation = m.conversation AND q.role = 'user' AND q.id < m.id
                   ORDER BY q.id DESC LIMIT 1) AS asked
           FROM chat_messages m WHERE m.id = ?""",
        [message_id],
    ).fetchone()
    keys = ("id", "username", "conversation", "role", "content", "model_id", "asked")
    return None if row is None else dict(zip(keys, row))


def conversation_ids(con, username: str, conversation: str) -> list[int]:
    """The ids of a conversation's messages, in order (chat_store.conversation's order)."""
    rows = con.execute(
        "SELECT id FROM chat_messages WHERE username = ? AND conversation = ? ORDER BY id",
        [username, conversation],
    ).fetchall()
    return [r[0] for r in rows]


def add(con, item: dict) -> int:
    """A new queued item: source, document, document_id, prompt, model_id, answer, rating,
    corrected, proposed, created_by, message_id, request_id (missing keys: NULL)."""
    columns = ("source", "document", "document_id", "prompt", "model_id", "answer", "rating",
               "corrected", "proposed", "created_by", "message_id", "request_id")  # fmt: skip
    values = [item.get(c) for c in columns]
    values[columns.index("proposed")] = bool(item.get("proposed"))
    return con.execute(
        f"INSERT INTO feedback ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) "
        "RETURNING id",
        values,
    ).fetchone()[0]


def update_queued(con, feedback_id: int, changes: dict) -> int:
    """Change the asker's fields (rating, corrected, proposed) of a queued item; returns rows
    changed (0: it was decided meanwhile)."""
    assert set(changes) <= set(_FIELDS)
    sets = ", ".join(f"{k} = ?" for k in changes)
    return con.execute(
        f"UPDATE feedback SET {sets} WHERE id = ? AND status = 'queued'",
        [*changes.values(), feedback_id],
    ).fetchone()[0]


def get(con, feedback_id: int) -> dict | None:
    df = con.execute("SELECT * FROM feedback WHERE id = ?", [feedback_id]).fetchdf()
    return None if df.empty else df.iloc[0].to_dict()


def by_messages(con, message_ids: list[int]) -> dict[int, dict]:
    """{message_id: feedback row} for those of the messages that have feedback."""
    df = con.execute(
        "SELECT * FROM feedback WHERE message_id IN (SELECT unnest(?))", [list(message_ids)]
    ).fetchdf()
    return {int(r["message_id"]): r for r in df.to_dict("records")}


def next_queued(con) -> dict | None:
    """The item to review next: proposed as examples first, then corrected or thumbs down,
    then the rest; oldest first within each."""
    row = con.execute(
        """SELECT id FROM feedback WHERE status = 'queued'
           ORDER BY NOT proposed, NOT (corrected IS NOT NULL OR rating = 0), id LIMIT 1"""
    ).fetchone()
    return None if row is None else get(con, row[0])


def count_queued(con) -> int:
    return con.execute("SELECT count(*) FROM feedback WHERE status = 'queued'").fetchone()[0]


def decide(
    con,
    feedback_id: int,
    status: str,
    reviewer: str,
    final: str | None,
    review_rating: int | None,
    seconds: float | None,
    edit_distance: float | None,
    example_id: int | None,
) -> int:
    """Accept or reject a queued item; returns rows changed (0: someone decided first)."""
    assert status in ("accepted", "rejected")
    return con.execute(
        """UPDATE feedback SET status = ?, reviewer = ?, reviewed_at = current_timestamp,
               corrected = coalesce(?, corrected), review_rating = ?, seconds = ?,
               edit_distance = ?, example_id = ?
           WHERE id = ? AND status = 'queued'""",
        [status, reviewer, final, review_rating, seconds, edit_distance, example_id, feedback_id],
    ).fetchone()[0]


def api_requests_after(con, request_id: int, limit: int = 1000) -> pd.DataFrame:
    """Logged API requests after `request_id` (id order): id, key_name, path, status,
    model_id, request_text, response_text (the texts only for keys that opted in)."""
    return con.execute(
        """SELECT id, key_name, path, status, model_id, request_text, response_text
           FROM api_requests WHERE id > ? ORDER BY id LIMIT ?""",
        [request_id, limit],
    ).fetchdf()


def last_api_request(con) -> int:
    return con.execute("SELECT coalesce(max(id), 0) FROM api_requests").fetchone()[0]


def document_with_text(con, text: str) -> str | None:
    """A stored document whose current (cleaned) text is exactly `text`, if any."""
    rows = con.execute(
        "SELECT id FROM documents WHERE clean_text = ? ORDER BY id LIMIT 1", [text]
    ).fetchall()  # fetchall: a half-read result blocks the connection's next register()
    return rows[0][0] if rows else None


def group_of(con, document_id: str) -> str:
    """The duplicate group a document's examples are split by (its cluster, else itself)."""
    rows = con.execute(
        "SELECT coalesce(cluster_id, id) FROM documents WHERE id = ?", [document_id]
    ).fetchall()  # fetchall: a half-read result blocks the connection's next register()
    return rows[0][0]


def group_sides(con, group: str) -> set[str]:
    """The sides the examples of a duplicate group sit on."""
    rows = con.execute(
        """SELECT DISTINCT e.split FROM examples e JOIN documents d ON d.id = e.document_id
           WHERE coalesce(d.cluster_id, d.id) = ? AND e.split IS NOT NULL""",
        [group],
    ).fetchall()
    return {r[0] for r in rows}


def join_cluster(con, document_id: str, cluster_id: str, pairs: pd.DataFrame):
    """Put a new document in a duplicate cluster, with the pairs (a, b, kind, score) that
    found it, as a full duplicate pass would."""
    con.execute("UPDATE documents SET cluster_id = ? WHERE id = ?", [cluster_id, document_id])
    if len(pairs):
        con.register("_pairs", pairs[["a", "b", "kind", "score"]])
        try:
            con.execute("INSERT INTO duplicate_pairs SELECT * FROM _pairs")
        finally:
            con.unregister("_pairs")


def examples_by_source(con) -> pd.DataFrame:
    """Examples created per week and source (week, source, examples), oldest first."""
    return con.execute(
        """SELECT date_trunc('week', created_at) AS week, source, count(*) AS examples
           FROM examples GROUP BY 1, 2 ORDER BY 1, 2"""
    ).fetchdf()


def feedback_by_week(con) -> pd.DataFrame:
    """Feedback per week and source: items, corrected (with a text other than the answer),
    accepted, rejected."""
    return con.execute(
        """SELECT date_trunc('week', created_at) AS week, source, count(*) AS items,
                  count(*) FILTER (corrected IS NOT NULL AND corrected <> answer) AS corrected,
                  count(*) FILTER (status = 'accepted') AS accepted,
                  count(*) FILTER (status = 'rejected') AS rejected
           FROM feedback GROUP BY 1, 2 ORDER BY 1, 2"""
    ).fetchdf()


def last_training(con) -> dict | None:
    """The newest succeeded training run: id, finished_at, seconds_ago (store clock)."""
    row = con.execute(
        """SELECT id, finished_at,
                  epoch(current_timestamp::TIMESTAMP) - epoch(finished_at) AS seconds_ago
           FROM runs WHERE kind = 'train' AND state = 'succeeded' AND finished_at IS NOT NULL
           ORDER BY finished_at DESC LIMIT 1"""
    ).fetchone()
    return None if row is None else dict(zip(("id", "finished_at", "seconds_ago"), row))
