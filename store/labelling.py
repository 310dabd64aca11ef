"""The labelling loop: model drafts, reviewer queues, ratings and corrections.

Both queues (documents to draft, drafts to review) follow `label_priority` (most useful first,
engine/labelling/ordering.py) unless the ORDER_SETTING says "plain"; documents it does not rank
come after, in plain order."""

from __future__ import annotations

import pandas as pd

from store.splits import get_setting

ORDER_SETTING = "labelling.order"  # setting: "priority" (default) or "plain"
# The one rule for which documents may be drafted and ranked at all: not set aside (every
# example of it rejected, as duplicate resolution leaves the dropped copies), and in a cluster
# of duplicates only the one member that comes first (one with a reference summary, then by
# id): the others would be drafted and reviewed for nothing.
_DRAFTABLE = """draftable AS (
    SELECT d.id FROM (
        SELECT d.id, row_number() OVER (
            PARTITION BY coalesce(d.cluster_id, d.id)
            ORDER BY EXISTS (SELECT 1 FROM examples e WHERE e.document_id = d.id
                             AND e.summary IS NOT NULL AND e.status <> 'rejected') DESC, d.id
        ) AS nth
        FROM documents d
        WHERE NOT (EXISTS (SELECT 1 FROM examples e WHERE e.document_id = d.id)
                   AND NOT EXISTS (SELECT 1 FROM examples e WHERE e.document_id = d.id
                                   AND e.status <> 'rejected'))) d
    WHERE d.nth = 1)"""


def priority_order(con) -> bool:
    return get_setting(con, ORDER_SETTING, "priority") != "plain"


def documents_to_draft(
    con,
    only_missing: bool = True,
    source: str | None = None,
    limit: int | None = None,
    ordered: bool | None = None,
) -> pd.DataFrame:
    """Documents (id, text) to draft: by default those with no reference summary and no draft,
    most useful first (`ordered`; None: as the setting says); never rejected documents or the
    extra copies of a duplicate (_DRAFTABLE)."""
    where, params = ["d.id IN (SELECT id FROM draftable)"], []
    if only_missing:
        where.append(
            "NOT EXISTS (SELECT 1 FROM examples e WHERE e.document_id = d.id "
            "AND e.summary IS NOT NULL AND e.status <> 'rejected')"
        )
        where.append("NOT EXISTS (SELECT 1 FROM drafts r WHERE r.document_id = d.id)")
    if source:
        where.append("d.source = ?")
        params.append(source)
    ordered = priority_order(con) if ordered is None else ordered
    sql = (
        f"WITH {_DRAFTABLE} "
        "SELECT d.id AS document_id, d.clean_text AS text FROM documents d "
        "LEFT JOIN label_priority p ON p.document_id = d.id "
        f"WHERE {' AND '.join(where)} "
        f"ORDER BY {'p.rank NULLS LAST, ' if ordered else ''}d.id"
    )
    if limit:
        sql += f" LIMIT {int(limit)}"
    return con.execute(sql, params).fetchdf()


def count_documents_to_draft(con) -> int:
    """How many documents drafting would take: no usable summary, no draft, draftable."""
    return con.execute(
        f"""WITH {_DRAFTABLE} SELECT count(*) FROM documents d
            WHERE d.id IN (SELECT id FROM draftable)
              AND NOT EXISTS (SELECT 1 FROM examples e WHERE e.document_id = d.id
                              AND e.summary IS NOT NULL AND e.status <> 'rejected')
              AND NOT EXISTS (SELECT 1 FROM drafts r WHERE r.document_id = d.id)"""
    ).fetchone()[0]


def add_drafts(con, drafts: pd.DataFrame) -> int:
    """drafts: document_id, summary, model_id, prompt_version, run_id, n_generated_tokens,
    truncated and optionally mean_logprob. A (document, run) pair already stored is skipped, so
    ingesting twice is safe."""
    if "mean_logprob" not in drafts:
        drafts = drafts.assign(mean_logprob=pd.array([None] * len(drafts), dtype="Float64"))
    con.register("_drafts", drafts)
    try:
        return con.execute(
            """INSERT INTO drafts (document_id, summary, model_id, prompt_version, run_id,
                   n_generated_tokens, truncated, mean_logprob)
               SELECT document_id, summary, model_id, prompt_version, run_id,
                   n_generated_tokens, truncated, mean_logprob::DOUBLE FROM _drafts n
               WHERE NOT EXISTS (SELECT 1 FROM drafts d WHERE d.document_id = n.document_id
                                 AND d.run_id IS NOT DISTINCT FROM n.run_id)"""
        ).fetchone()[0]
    finally:
        con.unregister("_drafts")


def next_for_reviewer(
    con, reviewer: str, overlap: int = 1, ordered: bool | None = None
) -> dict | None:
    """The draft this reviewer should see next.

    A draft they were already handed and have not reviewed comes first. Otherwise the most
    useful (`ordered`; None: as the setting says), then oldest, draft that fewer than `overlap`
    reviewers have been handed and that this reviewer has not reviewed; it is assigned to them
    at once, so two reviewers are not handed the same draft unless overlap > 1 asks for it (to
    measure agreement)."""
    ordered = priority_order(con) if ordered is None else ordered
    row = con.execute(
        """SELECT a.draft_id FROM assignments a WHERE a.reviewer = ? AND NOT EXISTS
             (SELECT 1 FROM reviews r WHERE r.draft_id = a.draft_id AND r.reviewer = a.reviewer)
           ORDER BY a.assigned_at, a.draft_id LIMIT 1""",
        [reviewer],
    ).fetchone()
    if row is None:
        row = con.execute(
            f"""SELECT d.id FROM drafts d
               LEFT JOIN label_priority p ON p.document_id = d.document_id
               WHERE (SELECT count(*) FROM assignments a WHERE a.draft_id = d.id) < ?
                 AND NOT EXISTS (SELECT 1 FROM reviews r WHERE r.draft_id = d.id
                                 AND r.reviewer = ?)
               ORDER BY {"p.rank NULLS LAST, " if ordered else ""}d.id LIMIT 1""",
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
    """The draft with its document (clean_text, title, n_tokens) and, when the labelling order
    ranks it, why it comes first (reason, NULL otherwise)."""
    df = con.execute(
        """SELECT r.*, d.clean_text, d.title, d.n_tokens, p.reason FROM drafts r
           JOIN documents d ON d.id = r.document_id
           LEFT JOIN label_priority p ON p.document_id = r.document_id WHERE r.id = ?""",
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
    seconds: float | None = None,
    edit_distance: float | None = None,
) -> int:
    """seconds: from opening the draft to this decision; edit_distance: word-level, between the
    draft and the saved text (0: accepted unchanged)."""
    return con.execute(
        """INSERT INTO reviews (draft_id, reviewer, rating, faithful, complete, concise, action,
               edited_summary, example_id, seconds, edit_distance)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id""",
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
            seconds,
            edit_distance,
        ],
    ).fetchone()[0]


def seconds_since_assigned(con, draft_id: int, reviewer: str) -> float | None:
    """Seconds since the draft was handed to the reviewer, if it was (both times as the store
    writes them, so time zones cancel)."""
    row = con.execute(
        "SELECT epoch(current_timestamp::TIMESTAMP) - epoch(assigned_at) FROM assignments "
        "WHERE draft_id = ? AND reviewer = ?",
        [draft_id, reviewer],
    ).fetchone()
    return None if row is None else max(0.0, float(row[0]))


def review_effort(con) -> pd.DataFrame:
    """One row per decision on a draft (saved or unusable; skips are not decisions): the model
    that wrote it, action, seconds, edit_distance, reviewer, created_at, and the draft and the
    edited text (NULL: saved unchanged) for decisions recorded before edit distances were."""
    return con.execute(
        """SELECT d.model_id, r.action, r.seconds, r.edit_distance, r.reviewer, r.created_at,
               d.summary AS draft, r.edited_summary
           FROM reviews r JOIN drafts d ON d.id = r.draft_id
           WHERE r.action IN ('saved', 'unusable') ORDER BY r.id"""
    ).fetchdf()


def recent_reviews(con, reviewer: str, limit: int = 5) -> pd.DataFrame:
    """The reviewer's latest reviews, newest first, with the example a saved one became (its
    summary and status now) and the history row of its creation by this reviewer (none when
    the save found the example already stored: theirs to withdraw, not this reviewer's)."""
    return con.execute(
        """SELECT r.id, r.draft_id, r.action, r.rating, r.created_at, r.example_id,
               e.summary, e.status,
               (SELECT min(h.id) FROM example_history h WHERE h.example_id = r.example_id
                AND h.field = 'created' AND h.username = r.reviewer) AS created_change
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


def label_candidates(con, limit: int) -> pd.DataFrame:
    """Documents without a reference summary that the labelling order ranks: those with a
    draft first (their newest draft: summary, mean_logprob), then the rest, up to `limit`, in
    plain order; never rejected documents or the extra copies of a duplicate (_DRAFTABLE).
    Columns: document_id, text, clean_version, draft, mean_logprob."""
    return con.execute(
        f"""WITH {_DRAFTABLE} SELECT d.id AS document_id, d.clean_text AS text, d.clean_version,
                  r.summary AS draft, r.mean_logprob
           FROM documents d
           LEFT JOIN (SELECT * FROM drafts QUALIFY row_number() OVER
                      (PARTITION BY document_id ORDER BY id DESC) = 1) r ON r.document_id = d.id
           WHERE d.id IN (SELECT id FROM draftable)
             AND NOT EXISTS (SELECT 1 FROM examples e WHERE e.document_id = d.id
                             AND e.summary IS NOT NULL AND e.status <> 'rejected')
           ORDER BY r.id IS NULL, d.id LIMIT ?""",
        [limit],
    ).fetchdf()


def training_documents(con, limit: int) -> pd.DataFrame:
    """Documents of the training set (accepted examples with a summary on the train side, or
    all accepted ones while nothing is split), up to `limit` in a fixed pseudo-random order:
    document_id, text, clean_version."""
    return con.execute(
        """WITH accepted AS (SELECT DISTINCT e.document_id, e.split = 'train' AS train
                            FROM examples e WHERE e.status = 'accepted'
                            AND e.summary IS NOT NULL AND coalesce(e.split, '') <> 'test')
           SELECT d.id AS document_id, d.clean_text AS text, d.clean_version
           FROM documents d JOIN (SELECT document_id FROM accepted WHERE train OR NOT EXISTS
                                  (SELECT 1 FROM accepted WHERE train) GROUP BY 1) a
                ON a.document_id = d.id
           ORDER BY hash(d.id) LIMIT ?""",
        [limit],
    ).fetchdf()


def draft_logprobs(con):
    """Every stored draft's mean token log-probability (where recorded), as an array."""
    return con.execute(
        "SELECT mean_logprob FROM drafts WHERE mean_logprob IS NOT NULL"
    ).fetchnumpy()["mean_logprob"]


def cached_embeddings(con, documents: pd.DataFrame) -> dict:
    """{document_id: vector bytes} for those of `documents` (document_id, clean_version)
    embedded at their current version."""
    con.register("_wanted", documents[["document_id", "clean_version"]])
    try:
        rows = con.execute(
            """SELECT v.document_id, v.vector FROM document_embeddings v JOIN _wanted w
               ON w.document_id = v.document_id AND w.clean_version = v.clean_version"""
        ).fetchall()
    finally:
        con.unregister("_wanted")
    return dict(rows)


def save_embeddings(con, rows: pd.DataFrame):
    """rows: document_id, clean_version, vector (bytes); replaces older versions."""
    con.register("_vectors", rows)
    try:
        con.execute(
            """INSERT INTO document_embeddings SELECT document_id, clean_version, vector
               FROM _vectors ON CONFLICT (document_id) DO UPDATE
               SET clean_version = excluded.clean_version, vector = excluded.vector"""
        )
    finally:
        con.unregister("_vectors")


def set_priorities(con, ranked: pd.DataFrame):
    """Replace the labelling order: rows of document_id, rank, score, reason."""
    con.execute("DELETE FROM label_priority")
    if len(ranked):
        con.register("_ranked", ranked[["document_id", "rank", "score", "reason"]])
        try:
            con.execute("INSERT INTO label_priority SELECT * FROM _ranked")
        finally:
            con.unregister("_ranked")


def priorities(con, limit: int) -> pd.DataFrame:
    """The stored order: rank, score, reason, document_id, title, words, whether drafted."""
    return con.execute(
        """SELECT p.rank, p.score, p.reason, p.document_id, d.title, d.n_words AS words,
                  EXISTS (SELECT 1 FROM drafts r WHERE r.document_id = p.document_id) AS drafted
           FROM label_priority p JOIN documents d ON d.id = p.document_id
           ORDER BY p.rank LIMIT ?""",
        [limit],
    ).fetchdf()


def priority_inputs(con) -> str:
    """What the labelling order depends on, as one string: it is stale when this changes."""
    row = con.execute(
        """SELECT (SELECT count(*) || ':' || coalesce(sum(clean_version), 0) FROM documents),
                  (SELECT coalesce(max(id), 0) FROM drafts),
                  (SELECT count(*) || ':' || coalesce(max(id), 0) FROM examples),
                  (SELECT count(*) FILTER (status = 'accepted') || ':'
                          || count(*) FILTER (split = 'train') FROM examples)"""
    ).fetchone()
    return "|".join(map(str, row))


def count_scored_waiting(con) -> int:
    """Drafts with a recorded log-probability (from a drafting run) that nobody has reviewed."""
    return con.execute(
        """SELECT count(*) FROM drafts d WHERE d.mean_logprob IS NOT NULL AND NOT EXISTS
           (SELECT 1 FROM reviews r WHERE r.draft_id = d.id AND r.action <> 'skipped')"""
    ).fetchone()[0]
