"""Migrations of the trustworthy-loop phase, appended after m004 (see store/migrations.py, which
lists them all in order): example versions and history, accounts and sessions, the audit log,
the API server's keys and request log, the feedback queue, and one example per document and
summary. Append-only, as there.
"""

from __future__ import annotations


def m005_history(con):
    """Edit history and optimistic concurrency for examples. Every change to a summary, status
    or tags records one row in `example_history` (who, when, before, after) and steps the
    example's `version`; a save carries the version it started from and is refused over a newer
    one. A bulk action groups its rows under one `example_batches` id, so it can be undone."""
    # DuckDB cannot add a NOT NULL column to a table that an index depends on.
    con.execute("DROP INDEX examples_document")
    con.execute("ALTER TABLE examples ADD COLUMN version INTEGER NOT NULL DEFAULT 1")
    con.execute("CREATE INDEX examples_document ON examples (document_id)")
    con.execute("CREATE SEQUENCE batch_ids START 1")
    con.execute(
        """CREATE TABLE example_batches (
            id BIGINT PRIMARY KEY DEFAULT nextval('batch_ids'),
            action VARCHAR NOT NULL,          -- what was done, in words
            username VARCHAR,
            undo_of BIGINT,                   -- the batch this one undid
            created_at TIMESTAMP DEFAULT current_timestamp
        )"""
    )
    con.execute("CREATE SEQUENCE history_ids START 1")
    con.execute(
        """CREATE TABLE example_history (
            id BIGINT PRIMARY KEY DEFAULT nextval('history_ids'),
            example_id BIGINT NOT NULL,
            field VARCHAR NOT NULL,           -- summary | status | tags | created
            before VARCHAR,                   -- tags as a sorted JSON list; NULL: no value
            after VARCHAR,
            username VARCHAR,
            changed_at TIMESTAMP DEFAULT current_timestamp,
            batch_id BIGINT,                  -- example_batches.id of a bulk action
            note VARCHAR                      -- e.g. "revert of change 12"
        )"""
    )


def m006_security(con):
    """Accounts that can be disabled, server-side login sessions and the login attempts that
    throttling counts. The browser's cookie holds a signed random token; only its SHA-256 is
    stored, so a copy of the database logs nobody in. Times are Unix seconds (as in
    run_events), which keeps expiry and backoff arithmetic plain."""
    con.execute("ALTER TABLE users ADD COLUMN disabled BOOLEAN NOT NULL DEFAULT FALSE")
    con.execute("ALTER TABLE users ADD COLUMN password_changed_at TIMESTAMP")
    con.execute(
        """CREATE TABLE sessions (
            token_hash VARCHAR PRIMARY KEY,   -- SHA-256 of the cookie's token, hex
            username VARCHAR NOT NULL,
            client VARCHAR,                   -- the address it was started from
            created DOUBLE NOT NULL,
            last_seen DOUBLE NOT NULL,        -- idle expiry counts from here
            expires DOUBLE NOT NULL,          -- absolute end, whatever the activity
            revoked BOOLEAN NOT NULL DEFAULT FALSE
        )"""
    )
    con.execute(
        """CREATE TABLE login_attempts (
            tried_at DOUBLE NOT NULL,
            username VARCHAR NOT NULL,        -- as typed: unknown names are throttled too
            client VARCHAR NOT NULL,
            ok BOOLEAN NOT NULL,
            refused BOOLEAN NOT NULL DEFAULT FALSE  -- turned away by the backoff, unchecked
        )"""
    )


def m007_audit(con):
    """The audit log: who did which admin action (bulk changes, undo, duplicate resolution,
    splits, cleaning, imports, exports, training, evaluation, promotion, account management),
    when, on what, with the counts before and after as JSON."""
    con.execute("CREATE SEQUENCE audit_ids START 1")
    con.execute(
        """CREATE TABLE audit_log (
            id BIGINT PRIMARY KEY DEFAULT nextval('audit_ids'),
            logged_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
            username VARCHAR NOT NULL,        -- who acted ("console" for the CLI)
            action VARCHAR NOT NULL,          -- engine.audit's action names: bulk_status, split…
            target VARCHAR,                   -- what it acted on: a policy, a run, a model, a user
            details VARCHAR                   -- JSON: settings, counts before and after
        )"""
    )


def m008_serving(con):
    """The API server (engine/serving): API keys, stored as SHA-256 hashes only (the key is
    shown once, at creation), and the request log the server writes and the app ingests."""
    con.execute("CREATE SEQUENCE api_key_ids START 1")
    con.execute(
        """CREATE TABLE api_keys (
            id BIGINT PRIMARY KEY DEFAULT nextval('api_key_ids'),
            name VARCHAR NOT NULL,            -- who uses it; unique among keys not revoked
            key_hash VARCHAR NOT NULL UNIQUE, -- SHA-256 of the key, hex
            prefix VARCHAR NOT NULL,          -- its first characters, to recognise it
            created_by VARCHAR NOT NULL,
            created DOUBLE NOT NULL,          -- Unix seconds
            expires DOUBLE,                   -- Unix seconds; NULL: never
            log_texts BOOLEAN NOT NULL DEFAULT FALSE,  -- the log keeps prompts and answers
            rate_limit INTEGER,               -- requests per minute; NULL: the server's default
            revoked DOUBLE                    -- when it was revoked; NULL: it works
        )"""
    )
    con.execute("CREATE SEQUENCE api_request_ids START 1")
    con.execute(
        """CREATE TABLE api_requests (
            id BIGINT PRIMARY KEY DEFAULT nextval('api_request_ids'),
            received DOUBLE NOT NULL,         -- when it arrived, Unix seconds
            key_name VARCHAR,                 -- NULL: no valid key (refused)
            method VARCHAR NOT NULL,
            path VARCHAR NOT NULL,
            status INTEGER NOT NULL,
            model_id VARCHAR,                 -- the model that answered
            prompt_tokens INTEGER,
            completion_tokens INTEGER,
            latency_ms DOUBLE,                -- until the answer's last byte
            first_token_ms DOUBLE,            -- until its first generated token
            finish_reason VARCHAR,            -- stop | length | cancelled | error
            error VARCHAR,                    -- the error message sent, if any
            request_text VARCHAR,             -- only for keys with log_texts
            response_text VARCHAR
        )"""
    )
    con.execute("CREATE INDEX api_requests_received ON api_requests (received)")
    con.execute(
        """CREATE TABLE api_log_files (
            file_id VARCHAR PRIMARY KEY,      -- the request log's device:inode
            ingested_bytes BIGINT NOT NULL    -- how far the app has read it
        )"""
    )


def m009_feedback(con):
    """The feedback loop: ratings and corrections of answers where they appear (Chat, sampled
    API requests) queued for review; review effort (seconds, word edit distance); each draft's
    mean token log-probability; cached document embeddings and the labelling order."""
    for table, column in (("reviews", "seconds"), ("reviews", "edit_distance"),
                          ("drafts", "mean_logprob")):  # fmt: skip
        con.execute(f"ALTER TABLE {table} ADD COLUMN {column} DOUBLE")
    con.execute("CREATE SEQUENCE feedback_ids START 1")
    con.execute(
        """CREATE TABLE feedback (
            id BIGINT PRIMARY KEY DEFAULT nextval('feedback_ids'),
            source VARCHAR NOT NULL,          -- chat | api
            document VARCHAR,                 -- the document summarized; NULL: a plain chat
            document_id VARCHAR,              -- when it is a document of the store
            prompt VARCHAR NOT NULL,          -- what the model was asked
            model_id VARCHAR, answer VARCHAR NOT NULL,
            rating INTEGER,                   -- the asker's thumbs: 1 up, 0 down
            corrected VARCHAR,                -- the asker's, then the reviewer's, final text
            proposed BOOLEAN NOT NULL DEFAULT FALSE,  -- "Save as example"
            status VARCHAR NOT NULL DEFAULT 'queued',  -- queued | accepted | rejected
            created_by VARCHAR,               -- the chat user, or the API key's name
            created_at TIMESTAMP DEFAULT current_timestamp,
            message_id BIGINT UNIQUE, request_id BIGINT UNIQUE,  -- where it came from
            reviewer VARCHAR, reviewed_at TIMESTAMP, review_rating INTEGER,  -- 1..5
            seconds DOUBLE, edit_distance DOUBLE,
            example_id BIGINT                 -- the example an accepted summary became
        )"""
    )
    con.execute(
        """CREATE TABLE document_embeddings (
            document_id VARCHAR PRIMARY KEY, clean_version INTEGER NOT NULL,
            vector BLOB NOT NULL              -- float32, normalised (all-MiniLM-L6-v2)
        )"""
    )
    con.execute(
        """CREATE TABLE label_priority (
            document_id VARCHAR PRIMARY KEY, rank INTEGER NOT NULL, score DOUBLE,
            reason VARCHAR NOT NULL           -- why it comes first, in words
        )"""
    )


def m010_merge_duplicate_examples(con):
    """One example per document and summary (issue 19): examples with the same content hash
    (engine/data/keys.py) are merged into one, which m011 then enforces. The one kept is
    an accepted one if any, else one not rejected, else the oldest; it takes the others' tags
    (a history row, its version stepped) and, while it has none, their split. Their history,
    reviews and feedback point at it afterwards (each history row says where it came from);
    frozen dataset versions, evaluation results and preferences keep the ids they were made with
    (copies, never changed). Near-duplicate clusters (the Duplicates page) are different
    documents, left to duplicate resolution."""
    con.execute(
        """CREATE TEMP TABLE _merged AS SELECT id AS dropped, first_value(id) OVER (
               PARTITION BY content_hash
               ORDER BY status = 'accepted' DESC, status <> 'rejected' DESC, id) AS kept
           FROM examples QUALIFY count(*) OVER (PARTITION BY content_hash) > 1"""
    )
    con.execute("DELETE FROM _merged WHERE dropped = kept")
    con.execute(
        """CREATE TEMP TABLE _tags AS
           SELECT k.id, to_json(list_sort(k.tags))::VARCHAR AS before,
                  to_json(list_sort(list_distinct(flatten(list(d.tags)) || k.tags)))::VARCHAR
                      AS after,
                  'merged with example ' || string_agg(d.id::VARCHAR, ', ' ORDER BY d.id)
                      || ': the same document and summary' AS note
           FROM _merged m JOIN examples k ON k.id = m.kept JOIN examples d ON d.id = m.dropped
           GROUP BY k.id, k.tags HAVING before <> after"""
    )
    con.execute(
        """INSERT INTO example_history (example_id, field, before, after, note)
           SELECT id, 'tags', before, after, note FROM _tags ORDER BY id"""
    )
    con.execute(
        """UPDATE examples SET tags = CAST(CAST(t.after AS JSON) AS VARCHAR[]),
               version = examples.version + 1
           FROM _tags t WHERE examples.id = t.id"""
    )
    con.execute(
        """UPDATE examples SET split = s.split FROM (
               SELECT m.kept, min(d.split) AS split FROM _merged m
               JOIN examples d ON d.id = m.dropped GROUP BY m.kept) s
           WHERE examples.id = s.kept AND examples.split IS NULL AND s.split IS NOT NULL"""
    )
    con.execute(
        """UPDATE example_history SET example_id = m.kept,
               note = coalesce(example_history.note || '; ', '') || 'from example '
                      || m.dropped || ', merged: the same document and summary'
           FROM _merged m WHERE example_history.example_id = m.dropped"""
    )
    for table in ("reviews", "feedback"):
        con.execute(
            f"UPDATE {table} SET example_id = m.kept FROM _merged m "
            f"WHERE {table}.example_id = m.dropped"
        )
    con.execute("DELETE FROM examples WHERE id IN (SELECT dropped FROM _merged)")
    con.execute("DROP TABLE _merged")
    con.execute("DROP TABLE _tags")


def m011_unique_content_hash(con):
    """The schema holds the dedupe rule: one example per content hash. A migration of its own
    because DuckDB cannot build a UNIQUE index in the transaction that deleted the duplicates."""
    con.execute("CREATE UNIQUE INDEX examples_content_hash ON examples (content_hash)")
