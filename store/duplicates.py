"""Duplicate clusters and the pairs that formed them, as found by engine/data/similarity.py."""

from __future__ import annotations

import pandas as pd


def cluster_summary(con, offset: int = 0, limit: int = 50) -> pd.DataFrame:
    """Clusters of more than one document, largest first, with how many are still undecided."""
    return con.execute(
        """SELECT d.cluster_id, count(DISTINCT d.id) AS documents,
                  count(e.id) FILTER (e.status NOT IN ('rejected')) AS kept,
                  any_value(d.title) AS title,
                  (SELECT max(p.kind) FROM duplicate_pairs p
                   WHERE p.a = d.cluster_id OR p.b = d.cluster_id) AS kind
           FROM documents d LEFT JOIN examples e ON e.document_id = d.id
           WHERE d.cluster_id IS NOT NULL GROUP BY d.cluster_id HAVING count(DISTINCT d.id) > 1
           ORDER BY documents DESC, d.cluster_id LIMIT ? OFFSET ?""",
        [limit, offset],
    ).fetchdf()


def count_clusters(con) -> tuple[int, int]:
    """(clusters of more than one document, documents in them)."""
    return con.execute(
        """SELECT count(*), coalesce(sum(n), 0) FROM (SELECT count(*) AS n FROM documents
           WHERE cluster_id IS NOT NULL GROUP BY cluster_id HAVING count(*) > 1)"""
    ).fetchone()


def cluster_members(con, cluster_id: str) -> pd.DataFrame:
    """Every example of every document in the cluster, with what a policy needs to choose."""
    return con.execute(
        """SELECT e.id, e.document_id, d.title, d.clean_text, e.summary, e.status, e.source,
                  d.n_words, d.imported_at, e.created_at
           FROM documents d JOIN examples e ON e.document_id = d.id
           WHERE d.cluster_id = ? ORDER BY e.id""",
        [cluster_id],
    ).fetchdf()


def cluster_ids(con) -> list[str]:
    return [
        r[0]
        for r in con.execute(
            "SELECT cluster_id FROM documents WHERE cluster_id IS NOT NULL "
            "GROUP BY cluster_id HAVING count(*) > 1 ORDER BY cluster_id"
        ).fetchall()
    ]


def pair_counts(con) -> pd.DataFrame:
    return con.execute(
        "SELECT kind, count(*) AS pairs FROM duplicate_pairs GROUP BY 1 ORDER BY 1"
    ).fetchdf()


_POLICY_ORDER = {
    "accepted": "(e.status = 'accepted') DESC, d.n_words + e.n_summary_words DESC, e.id",
    "longest": "d.n_words + e.n_summary_words DESC, e.id",
    "newest": "e.created_at DESC, e.id DESC",
}


def reject_all_but_one(con, policy: str, user: str | None = None) -> int:
    """In every cluster of several documents keep the first non-rejected example by the
    policy's order and reject the others; return how many were rejected."""
    return con.execute(
        f"""UPDATE examples SET status = 'rejected', updated_at = current_timestamp,
                updated_by = ?
            WHERE id IN (
              SELECT id FROM (
                SELECT e.id, row_number() OVER (
                    PARTITION BY d.cluster_id ORDER BY {_POLICY_ORDER[policy]}) AS rank
                FROM examples e JOIN documents d ON d.id = e.document_id
                WHERE e.status <> 'rejected' AND d.cluster_id IN (
                    SELECT cluster_id FROM documents WHERE cluster_id IS NOT NULL
                    GROUP BY cluster_id HAVING count(*) > 1))
              WHERE rank > 1)""",
        [user],
    ).fetchone()[0]
