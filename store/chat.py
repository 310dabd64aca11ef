"""Per-user chat history."""

from __future__ import annotations


def add_message(
    con, username: str, conversation: str, role: str, content: str, model_id: str | None = None
):
    con.execute(
        "INSERT INTO chat_messages (username, conversation, role, content, model_id) "
        "VALUES (?, ?, ?, ?, ?)",
        [username, conversation, role, content, model_id],
    )


def conversation(con, username: str, conversation: str) -> list[dict]:
    rows = con.execute(
        "SELECT role, content, model_id FROM chat_messages WHERE username = ? AND "
        "conversation = ? ORDER BY id",
        [username, conversation],
    ).fetchall()
    return [{"role": r, "content": c, "model_id": m} for r, c, m in rows]


def conversations(con, username: str) -> list[dict]:
    """The user's conversations, newest first: conversation, first_message (the first user
    message, "" if none) and started_at."""
    rows = con.execute(
        """SELECT conversation, arg_min(content, id) FILTER (role = 'user'), min(created_at)
           FROM chat_messages WHERE username = ? GROUP BY 1 ORDER BY max(id) DESC""",
        [username],
    ).fetchall()
    return [{"conversation": c, "first_message": m or "", "started_at": t} for c, m, t in rows]
