"""Background runs (drafting, training, evaluation) as the app sees them, and their events."""

from __future__ import annotations

import json

import pandas as pd


def add_run(con, run_id: str, kind: str, run_dir: str, config: dict, user: str | None = None):
    con.execute(
        "INSERT INTO runs (id, kind, run_dir, state, config, created_by) "
        "VALUES (?, ?, ?, 'queued', ?, ?)",
        [run_id, kind, run_dir, json.dumps(config, default=str), user],
    )


def get_run(con, run_id: str) -> dict | None:
    df = con.execute("SELECT * FROM runs WHERE id = ?", [run_id]).fetchdf()
    return None if df.empty else df.iloc[0].to_dict()


def list_runs(con, kind: str | None = None, states: tuple[str, ...] = ()) -> pd.DataFrame:
    where, params = ["TRUE"], []
    if kind:
        where.append("kind = ?")
        params.append(kind)
    if states:
        where.append("state IN (SELECT unnest(?))")
        params.append(list(states))
    return con.execute(
        f"SELECT * FROM runs WHERE {' AND '.join(where)} ORDER BY created_at DESC, id DESC",
        params,
    ).fetchdf()


def set_state(con, run_id: str, state: str, reason: str | None = None):
    con.execute(
        """UPDATE runs SET state = ?, reason = ?, finished_at = CASE WHEN ? IN
               ('succeeded', 'failed', 'cancelled') THEN current_timestamp END WHERE id = ?""",
        [state, reason, state, run_id],
    )


def add_events(con, run_id: str, events: list[dict], offset: int, skip_stored: bool = False):
    """Store newly read events and how far the events file has been read. `skip_stored`:
    the file was read again from the start (it was cut below the offset), so events already
    stored (same content) are not added twice."""
    if events:
        rows = pd.DataFrame(
            {
                "run_id": run_id,
                "time": [float(e.get("time", 0)) for e in events],
                "type": [str(e.get("type", "")) for e in events],
                "data": [json.dumps(e, default=str) for e in events],
            }
        )
        con.register("_events", rows)
        try:
            sql = "INSERT INTO run_events SELECT run_id, time, type, data FROM _events n"
            if skip_stored:
                sql += (
                    " WHERE NOT EXISTS (SELECT 1 FROM run_events o WHERE o.run_id = n.run_id"
                    " AND o.data = n.data)"
                )
            con.execute(sql)
        finally:
            con.unregister("_events")
    con.execute("UPDATE runs SET events_offset = ? WHERE id = ?", [offset, run_id])


def run_events(con, run_id: str, kind: str | None = None) -> list[dict]:
    sql, params = "SELECT data FROM run_events WHERE run_id = ?", [run_id]
    if kind:
        sql += " AND type = ?"
        params.append(kind)
    return [json.loads(r[0]) for r in con.execute(sql + " ORDER BY time", params).fetchall()]


def latest_event(con, run_id: str, kind: str) -> dict | None:
    """The newest event of one type: what a polling page reads instead of every event."""
    row = con.execute(
        "SELECT data FROM run_events WHERE run_id = ? AND type = ? ORDER BY time DESC LIMIT 1",
        [run_id, kind],
    ).fetchone()
    return json.loads(row[0]) if row else None


def active_runs(con) -> pd.DataFrame:
    """Queued and running runs, oldest first (the order the queue starts them)."""
    return con.execute(
        "SELECT id, kind, state, created_by, created_at FROM runs "
        "WHERE state IN ('queued', 'running') ORDER BY created_at, id"
    ).fetchdf()
