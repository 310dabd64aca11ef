"""Documents: raw text kept forever, cleaned text versioned, token counts and duplicate clusters."""

from __future__ import annotations

import pandas as pd


def start_import(con, source: str, kind: str) -> int:
    return con.execute(
        "INSERT INTO imports (source, kind) VALUES (?, ?) RETURNING id", [source, kind]
    ).fetchone()[0]


def finish_import(con, import_id: int, n_read: int, n_docs: int, n_examples: int, n_skipped: int):
    con.execute(
        "UPDATE imports SET n_read = ?, n_new_documents = ?, n_new_examples = ?, n_skipped = ? "
        "WHERE id = ?",
        [n_read, n_docs, n_examples, n_skipped, import_id],
    )


def add_documents(con, docs) -> int:
    """Insert documents (a DataFrame or Arrow table: id, raw_text, title, source, ref, n_words,
    import_id) whose id is new; return how many were new. The first of rows with one id wins."""
    con.register("_new_docs", docs)
    try:
        return con.execute(
            """INSERT INTO documents
                   (id, raw_text, clean_text, title, source, ref, n_words, import_id)
               SELECT id, raw_text, raw_text, title, source, ref, n_words, import_id
               FROM (SELECT *, row_number() OVER (PARTITION BY id) AS k FROM _new_docs)
               WHERE k = 1 AND id NOT IN (SELECT id FROM documents)"""
        ).fetchone()[0]
    finally:
        con.unregister("_new_docs")


def get_document(con, document_id: str) -> dict | None:
    row = con.execute("SELECT * FROM documents WHERE id = ?", [document_id]).fetchdf()
    return None if row.empty else row.iloc[0].to_dict()


def count_documents(con) -> int:
    return con.execute("SELECT count(*) FROM documents").fetchone()[0]


def iter_texts(con, column: str = "clean_text", batch_size: int = 5_000):
    """Yield DataFrames (id, text) in id order, batch by batch, never the whole table.

    Keyset pagination on the same connection, so the caller may write between batches inside
    its transaction and later batches see those writes."""
    assert column in ("clean_text", "raw_text")
    last = ""
    while True:
        batch = con.execute(
            f"SELECT id, {column} AS text FROM documents WHERE id > ? ORDER BY id LIMIT ?",
            [last, batch_size],
        ).fetchdf()
        if batch.empty:
            return
        last = batch["id"].iloc[-1]
        yield batch


def save_clean_texts(con, cleaned: pd.DataFrame, settings_key: str) -> int:
    """Record a new cleaned version for rows (id, text) whose text changed; return how many."""
    con.register("_cleaned", cleaned)
    try:
        con.execute(
            """CREATE OR REPLACE TEMP TABLE _changed AS
               SELECT c.id, c.text, d.clean_version + 1 AS version FROM _cleaned c
               JOIN documents d ON d.id = c.id WHERE d.clean_text <> c.text"""
        )
        changed = con.execute("SELECT count(*) FROM _changed").fetchone()[0]
        con.execute(
            "INSERT INTO document_versions (document_id, version, text, settings) "
            "SELECT id, version, text, ? FROM _changed",
            [settings_key],
        )
        con.execute(
            "UPDATE documents SET clean_text = c.text, clean_version = c.version "
            "FROM _changed c WHERE documents.id = c.id"
        )
        con.execute("DROP TABLE _changed")
        return changed
    finally:
        con.unregister("_cleaned")


def document_versions(con, document_id: str) -> pd.DataFrame:
    return con.execute(
        "SELECT version, settings, created_at, text FROM document_versions "
        "WHERE document_id = ? ORDER BY version",
        [document_id],
    ).fetchdf()


def set_token_counts(con, counts: pd.DataFrame):
    """counts: columns id, n_tokens."""
    con.register("_counts", counts)
    try:
        con.execute(
            "UPDATE documents SET n_tokens = c.n_tokens FROM _counts c WHERE documents.id = c.id"
        )
    finally:
        con.unregister("_counts")


def set_clusters(con, clusters: pd.DataFrame, pairs: pd.DataFrame):
    """Replace duplicate clusters (columns id, cluster_id) and the pairs behind them."""
    con.register("_clusters", clusters)
    con.register("_pairs", pairs)
    try:
        con.execute("UPDATE documents SET cluster_id = NULL")
        con.execute(
            "UPDATE documents SET cluster_id = c.cluster_id FROM _clusters c "
            "WHERE documents.id = c.id"
        )
        con.execute("DELETE FROM duplicate_pairs")
        con.execute("INSERT INTO duplicate_pairs SELECT a, b, kind, score FROM _pairs")
    finally:
        con.unregister("_clusters")
        con.unregister("_pairs")
