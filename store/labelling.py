"""The labelling loop: model drafts, reviewer queues, ratings and corrections."""

from __future__ import annotations

import pandas as pd

from store import history


def documents_to_draft(
    con, only_missing: bool = True, source: str | None = None, limit: int | None = None
) -> pd.DataFrame:
    """Documents (id, text) to draft: by default those with no reference summary and no draft."""
    where, params = ["TRUE"], []
    if only_missing:
        where.append(
            "NOT EXISTS (SELECT 1 FROM examples e WHERE e.document_id = d.id "
            "AND e.summary IS NOT NULL AND e.status <> 'rejected')"
        )
        where.append("NOT EXISTS (SELECT 1 FROM drafts r WHERE r.document_id = d.id)")
    if source:
        where.append("d.source = ?")
        params.append(source)
    sql = (
        f"SELECT d.id AS document_id, d.clean_text AS text FROM documents d WHERE "
        f"{' AND '.join(where)} ORDER BY d.id"
    )
    if limit:
        sql += f" LIMIT {int(limit)}"
    return con.execute(sql, params).fetchdf()


def add_drafts(con, drafts: pd.DataFrame) -> int:
    """drafts: document_id, summary, model_id, prompt_version, run_id, n_generated_tokens,
    truncated. A (document, run) pair already stored is skipped, so ingesting twice is safe."""
    con.register("_drafts", drafts)
    try:
        return con.execute(
            """INSERT INTO drafts (document_id, summary, model_id, prompt_version, run_id,
                   n_generated_tokens, truncated)
               SELECT document_id, summary, model_id, prompt_version, run_id,
                   n_generated_tokens, truncated FROM _drafts n
               WHERE NOT EXISTS (SELECT 1 FROM drafts d WHERE d.document_id = n.document_id
                                 AND d.run_id IS NOT DISTINCT FROM n.run_id)"""
        ).fetchone()[0]
    finally:
        con.unregister("_drafts")


def next_for_reviewer(con, reviewer: str, overlap: int = 1) -> dict | None:
    """The draft this reviewer should see next.

    A draft they were already handed and have not reviewed comes first. Otherwise the oldest
    draft that fewer than `overlap` reviewers have been handed and that this reviewer has not
    reviewed; it is assigned to them at once, so two reviewers are not handed the same draft
    unless overlap > 1 asks for it (to measure agreement)."""
    row = con.execute(
        """SELECT a.draft_id FROM assignments a WHERE a.reviewer = ? AND NOT EXISTS
             (SELECT 1 FROM reviews r WHERE r.draft_id = a.draft_id AND r.reviewer = a.reviewer)
           ORDER BY a.assigned_at, a.draft_id LIMIT 1""",
        [reviewer],
    ).fetchone()
    if row is None:
        row = con.execute(
            """SELECT d.id FROM drafts d
               WHERE (SELECT count(*) FROM assignments a WHERE a.draft_id = d.id) < ?
                 AND NOT EXISTS (SELECT 1 FROM reviews r WHERE r.draft_id = d.id
                                 AND r.reviewer = ?)
               ORDER BY d.id LIMIT 1""",
            [overlap, reviewer],
        ).fetchone()
        if row is None:
            return None
        con.execute(
            "INSERT INTO assignments (draft_id, reviewer) VALUES (?, ?)", [row[0], reviewer]
        )
    return get_draft(con, row[0])


def release(con, draft_id: int, reviewer: str):
    """Hand a skipped draft back to the pool (the reviewer's skip keeps it off their queue)."""
    con.execute("DELETE FROM assignments WHERE draft_id = ? AND reviewer = ?", [draft_id, reviewer])


def get_draft(con, draft_id: int) -> dict | None:
    df = con.execute(
        """SELECT r.*, d.clean_text, d.title, d.n_tokens FROM drafts r
           JOIN documents d ON d.id = r.document_id WHERE r.id = ?""",
        [draft_id],
    ).fetchdf()
    return None if df.empty else df.iloc[0].to_dict()


def add_review(
    con,
    draft_id: int,
    reviewer: str,
    action: str,
    rating: int | None = None,
    faithful: bool | None = None,
    complete: bool | None = None,
    concise: bool | None = None,
    edited_summary: str | None = None,
    example_id: int | None = None,
) -> int:
    return con.execute(
        """INSERT INTO reviews (draft_id, reviewer, rating, faithful, complete, concise, action,
               edited_summary, example_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id""",
        [
            draft_id,
            reviewer,
            rating,
            faithful,
            complete,
            concise,
            action,
            edited_summary,
            example_id,
        ],
    ).fetchone()[0]


def add_corrected_example(
    con, document_id: str, summary: str, draft_id: int, reviewer: str, content_hash: str
) -> int:
    """A reviewer's correction becomes an accepted reference summary linked to its draft; its
    history starts with a 'created' row naming the reviewer."""
    example_id = con.execute(
        """INSERT INTO examples (document_id, summary, origin, source, status, content_hash,
               n_summary_words, parent_id, updated_by)
           VALUES (?, ?, 'human-corrected', 'review', 'accepted', ?, ?, ?, ?) RETURNING id""",
        [document_id, summary, content_hash, len(summary.split()), draft_id, reviewer],
    ).fetchone()[0]
    history.record_created(con, example_id, summary, reviewer)
    return example_id


def recent_reviews(con, reviewer: str, limit: int = 5) -> pd.DataFrame:
    """The reviewer's latest reviews, newest first, with the example a saved one became (its
    summary and status now) and the history row of its creation."""
    return con.execute(
        """SELECT r.id, r.draft_id, r.action, r.rating, r.created_at, r.example_id,
               e.summary, e.status,
               (SELECT min(h.id) FROM example_history h WHERE h.example_id = r.example_id
                AND h.field = 'created') AS created_change
           FROM reviews r LEFT JOIN examples e ON e.id = r.example_id
           WHERE r.reviewer = ? AND r.action <> 'skipped' ORDER BY r.id DESC LIMIT ?""",
        [reviewer, limit],
    ).fetchdf()


def ratings_table(con) -> pd.DataFrame:
    """One row per (draft, reviewer) rating, for agreement statistics."""
    return con.execute(
        "SELECT draft_id, reviewer, rating FROM reviews WHERE rating IS NOT NULL "
        "ORDER BY draft_id, reviewer"
    ).fetchdf()


def review_counts(con) -> pd.DataFrame:
    return con.execute(
        "SELECT reviewer, action, count(*) AS n FROM reviews GROUP BY 1, 2 ORDER BY 1, 2"
    ).fetchdf()


def count_drafts(con) -> tuple[int, int]:
    """(drafts, drafts with at least one non-skipped review)."""
    return con.execute(
        """SELECT count(*), count(*) FILTER (EXISTS (SELECT 1 FROM reviews r
               WHERE r.draft_id = d.id AND r.action <> 'skipped')) FROM drafts d"""
    ).fetchone()
