"""Append-only schema migrations. Never edit one that has shipped: add the next `mNNN_…`.

Documents keep their raw text forever; cleaning writes a new numbered version and updates
`clean_text` (the current one). An example is a document with a reference summary (or none yet,
waiting for the labelling loop), its origin, review status, split and flags. Dataset versions
are frozen copies of the examples a training run used.
"""

from __future__ import annotations


def m001_core(con):
    con.execute("CREATE SEQUENCE example_ids START 1")
    con.execute("CREATE SEQUENCE import_ids START 1")
    con.execute("CREATE SEQUENCE dataset_ids START 1")
    con.execute(
        """CREATE TABLE documents (
            id VARCHAR PRIMARY KEY,          -- xxh3-128 of the raw text: re-imports add nothing
            raw_text VARCHAR NOT NULL,
            clean_text VARCHAR NOT NULL,     -- current cleaned text (the raw text until cleaned)
            clean_version INTEGER NOT NULL DEFAULT 0,
            title VARCHAR,
            source VARCHAR NOT NULL,         -- file or dataset it was imported from
            ref VARCHAR,                     -- where in the source (file:line)
            n_words INTEGER NOT NULL,
            n_tokens INTEGER,                -- in the tokenizer of the chosen model, when counted
            cluster_id VARCHAR,              -- duplicate cluster: id of its first document
            import_id BIGINT,
            imported_at TIMESTAMP DEFAULT current_timestamp
        )"""
    )
    con.execute(
        """CREATE TABLE document_versions (
            document_id VARCHAR NOT NULL,
            version INTEGER NOT NULL,
            text VARCHAR NOT NULL,
            settings VARCHAR NOT NULL,       -- CleanSettings.key() that produced it
            created_at TIMESTAMP DEFAULT current_timestamp,
            PRIMARY KEY (document_id, version)
        )"""
    )
    con.execute(
        """CREATE TABLE examples (
            id BIGINT PRIMARY KEY DEFAULT nextval('example_ids'),
            document_id VARCHAR NOT NULL,
            summary VARCHAR,                 -- NULL: no reference yet
            origin VARCHAR NOT NULL,         -- imported | human-corrected | model-draft
            source VARCHAR NOT NULL,
            status VARCHAR NOT NULL DEFAULT 'pending',  -- pending | accepted | rejected | needs-edit
            split VARCHAR,                   -- train | validation | test, NULL until split
            tags VARCHAR[] NOT NULL DEFAULT [],
            flags VARCHAR[] NOT NULL DEFAULT [],
            content_hash VARCHAR NOT NULL,   -- document id + normalised summary
            n_summary_words INTEGER NOT NULL DEFAULT 0,
            parent_id BIGINT,                -- the draft or example this one was made from
            created_at TIMESTAMP DEFAULT current_timestamp,
            updated_at TIMESTAMP DEFAULT current_timestamp,
            updated_by VARCHAR
        )"""
    )
    con.execute("CREATE INDEX examples_document ON examples (document_id)")
    con.execute(
        """CREATE TABLE imports (
            id BIGINT PRIMARY KEY DEFAULT nextval('import_ids'),
            source VARCHAR NOT NULL, kind VARCHAR NOT NULL,
            n_read INTEGER, n_new_documents INTEGER, n_new_examples INTEGER, n_skipped INTEGER,
            created_at TIMESTAMP DEFAULT current_timestamp
        )"""
    )
    con.execute(
        """CREATE TABLE duplicate_pairs (
            a VARCHAR NOT NULL, b VARCHAR NOT NULL,  -- document ids, a < b
            kind VARCHAR NOT NULL,                   -- exact | near | semantic
            score DOUBLE NOT NULL
        )"""
    )
    con.execute(
        """CREATE TABLE dataset_versions (
            id BIGINT PRIMARY KEY DEFAULT nextval('dataset_ids'),
            note VARCHAR,
            n_train INTEGER, n_validation INTEGER, n_test INTEGER,
            created_at TIMESTAMP DEFAULT current_timestamp
        )"""
    )
    con.execute(
        """CREATE TABLE dataset_examples (
            dataset_id BIGINT NOT NULL, example_id BIGINT NOT NULL, split VARCHAR NOT NULL,
            document VARCHAR NOT NULL, summary VARCHAR NOT NULL, title VARCHAR
        )"""
    )
    con.execute("CREATE TABLE settings (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL)")


MIGRATIONS = [m001_core]
