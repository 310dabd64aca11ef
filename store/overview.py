"""Counts for the Home page's loop checklist, and the token lengths pre-flight checks use."""

from __future__ import annotations

import pandas as pd

CLEANED_THROUGH = "cleaned_through_import"  # settings key: the last import cleaning saw


def record_cleaning(con):
    """Remember that every document imported so far has been through cleaning (whether or not
    it changed: cleaning records a version only for documents it changes)."""
    con.execute(
        """INSERT INTO settings SELECT ?, coalesce(max(import_id), 0)::VARCHAR FROM documents
           ON CONFLICT (key) DO UPDATE SET value = excluded.value""",
        [CLEANED_THROUGH],
    )


def cleaning_counts(con) -> dict:
    """Documents that cleaning changed (cleaned), and documents imported after the last
    cleaning (all of them when there was none): not_cleaned."""
    row = con.execute(
        """SELECT count(*) FILTER (clean_version > 0),
                  count(*) FILTER (coalesce(import_id, 0) > coalesce(
                      (SELECT value::BIGINT FROM settings WHERE key = ?), -1))
           FROM documents""",
        [CLEANED_THROUGH],
    ).fetchone()
    return {"cleaned": int(row[0]), "not_cleaned": int(row[1])}


def count_undecided_clusters(con) -> int:
    """Duplicate clusters that still keep more than one example (none rejected yet)."""
    return con.execute(
        """SELECT count(*) FROM (
               SELECT d.cluster_id FROM documents d JOIN examples e ON e.document_id = d.id
               WHERE d.cluster_id IS NOT NULL GROUP BY d.cluster_id
               HAVING count(DISTINCT d.id) > 1 AND count(*) FILTER (e.status <> 'rejected') > 1)"""
    ).fetchone()[0]


def count_documents_to_label(con) -> int:
    """Documents with no usable reference summary and no draft yet (what drafting would take;
    the rule lives in store/labelling.py)."""
    from store.labelling import count_documents_to_draft

    return count_documents_to_draft(con)


def latest_import_pending(con) -> tuple[str | None, int]:
    """(source, n): examples with a summary from the newest import's documents that are
    still pending, which training leaves out until someone accepts them."""
    row = con.execute(
        """SELECT i.source, count(e.id) FROM imports i
           JOIN documents d ON d.import_id = i.id
           JOIN examples e ON e.document_id = d.id
           WHERE i.id = (SELECT max(id) FROM imports) AND e.status = 'pending'
             AND e.summary IS NOT NULL GROUP BY i.source"""
    ).fetchone()
    return (row[0], int(row[1])) if row else (None, 0)


def count_runs(con, kind: str) -> dict:
    """Runs of a kind by state: {"succeeded": 2, "running": 1, ...}."""
    rows = con.execute(
        "SELECT state, count(*) FROM runs WHERE kind = ? GROUP BY 1", [kind]
    ).fetchall()
    return {state: int(n) for state, n in rows}


def count_fine_tune_evaluations(con) -> int:
    """Evaluations of fine-tuned models (not base models) that finished."""
    return con.execute(
        """SELECT count(*) FROM evaluations e JOIN runs r ON r.id = e.run_id
           JOIN models m ON m.id = e.model_id
           WHERE r.state = 'succeeded' AND m.kind <> 'base'"""
    ).fetchone()[0]


def dataset_lengths(con, dataset_id: int) -> pd.DataFrame:
    """Each example of a dataset version: split, document and summary words, and the document's
    counted tokens (NaN when not counted, or when the document was re-cleaned since freezing)."""
    return con.execute(
        """SELECT x.example_id, x.split,
                  length(string_split_regex(trim(x.document), '\\s+')) AS n_words,
                  length(string_split_regex(trim(x.summary), '\\s+')) AS n_summary_words,
                  CASE WHEN d.clean_text = x.document THEN d.n_tokens END AS n_tokens
           FROM dataset_examples x
           LEFT JOIN examples e ON e.id = x.example_id
           LEFT JOIN documents d ON d.id = e.document_id
           WHERE x.dataset_id = ? ORDER BY x.example_id""",
        [dataset_id],
    ).fetchdf()
