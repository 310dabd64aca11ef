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
            status VARCHAR NOT NULL DEFAULT 'pending',  -- pending|accepted|rejected|needs-edit
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


def m002_labelling(con):
    """Users, the versioned prompt template, registered models, drafts, reviews, chat history
    and background runs."""
    con.execute(
        """CREATE TABLE users (
            name VARCHAR PRIMARY KEY,
            password_hash VARCHAR NOT NULL,   -- bcrypt
            role VARCHAR NOT NULL,            -- admin | reviewer
            created_at TIMESTAMP DEFAULT current_timestamp
        )"""
    )
    con.execute(
        """CREATE TABLE prompt_versions (
            version INTEGER PRIMARY KEY,
            instruction VARCHAR NOT NULL,
            created_by VARCHAR,
            created_at TIMESTAMP DEFAULT current_timestamp
        )"""
    )
    con.execute(
        """CREATE TABLE models (
            id VARCHAR PRIMARY KEY,           -- short name used everywhere
            kind VARCHAR NOT NULL,            -- base | lora | full
            path VARCHAR NOT NULL,            -- folder, or a Hub id for online users
            base_id VARCHAR,                  -- the base model an adapter applies to
            run_id VARCHAR,                   -- the training run that made it
            note VARCHAR,
            created_at TIMESTAMP DEFAULT current_timestamp
        )"""
    )
    con.execute("CREATE SEQUENCE draft_ids START 1")
    con.execute(
        """CREATE TABLE drafts (
            id BIGINT PRIMARY KEY DEFAULT nextval('draft_ids'),
            document_id VARCHAR NOT NULL,
            summary VARCHAR NOT NULL,
            model_id VARCHAR NOT NULL,
            prompt_version INTEGER NOT NULL,
            run_id VARCHAR,
            n_generated_tokens INTEGER,
            truncated BOOLEAN NOT NULL DEFAULT FALSE,  -- the document was cut to fit the context
            created_at TIMESTAMP DEFAULT current_timestamp
        )"""
    )
    con.execute("CREATE SEQUENCE review_ids START 1")
    con.execute(
        """CREATE TABLE reviews (
            id BIGINT PRIMARY KEY DEFAULT nextval('review_ids'),
            draft_id BIGINT NOT NULL,
            reviewer VARCHAR NOT NULL,
            rating INTEGER,                   -- 1..5
            faithful BOOLEAN, complete BOOLEAN, concise BOOLEAN,
            action VARCHAR NOT NULL,          -- saved | unusable | skipped
            edited_summary VARCHAR,
            example_id BIGINT,                -- the accepted example the correction became
            created_at TIMESTAMP DEFAULT current_timestamp
        )"""
    )
    con.execute(
        """CREATE TABLE assignments (
            draft_id BIGINT NOT NULL, reviewer VARCHAR NOT NULL,
            assigned_at TIMESTAMP DEFAULT current_timestamp,
            PRIMARY KEY (draft_id, reviewer)
        )"""
    )
    con.execute("CREATE SEQUENCE message_ids START 1")
    con.execute(
        """CREATE TABLE chat_messages (
            id BIGINT PRIMARY KEY DEFAULT nextval('message_ids'),
            username VARCHAR NOT NULL, conversation VARCHAR NOT NULL,
            role VARCHAR NOT NULL, content VARCHAR NOT NULL, model_id VARCHAR,
            created_at TIMESTAMP DEFAULT current_timestamp
        )"""
    )
    con.execute(
        """CREATE TABLE runs (
            id VARCHAR PRIMARY KEY,           -- also the run folder's name
            kind VARCHAR NOT NULL,            -- draft | train | eval
            run_dir VARCHAR NOT NULL,
            state VARCHAR NOT NULL,           -- queued | running | succeeded | failed | cancelled
            reason VARCHAR,
            config VARCHAR NOT NULL,          -- JSON copy of config.json
            events_offset BIGINT NOT NULL DEFAULT 0,  -- how far events.jsonl was ingested
            created_by VARCHAR,
            created_at TIMESTAMP DEFAULT current_timestamp,
            finished_at TIMESTAMP
        )"""
    )
    con.execute(
        """CREATE TABLE run_events (
            run_id VARCHAR NOT NULL, time DOUBLE NOT NULL, type VARCHAR NOT NULL,
            data VARCHAR NOT NULL             -- the event as JSON
        )"""
    )


def m003_sweeps(con):
    """Hyperparameter sweeps: a search space over one frozen dataset version; each trial is a
    training run whose config names the sweep."""
    con.execute(
        """CREATE TABLE sweeps (
            id VARCHAR PRIMARY KEY,
            state VARCHAR NOT NULL,           -- running | done | cancelled
            base_model_id VARCHAR NOT NULL,
            dataset_id INTEGER NOT NULL,
            base_config VARCHAR NOT NULL,     -- JSON TrainConfig the trials start from
            space VARCHAR NOT NULL,           -- JSON SweepSpace
            created_by VARCHAR,
            created_at TIMESTAMP DEFAULT current_timestamp
        )"""
    )


def m004_evaluation(con):
    """Evaluations of a model on a frozen dataset's test split (scores per document), blind A/B
    preferences between two evaluations' summaries, and the production model's promotions."""
    con.execute(
        """CREATE TABLE evaluations (
            run_id VARCHAR PRIMARY KEY,       -- the eval run (runs.id)
            model_id VARCHAR NOT NULL,
            dataset_id BIGINT NOT NULL,
            prompt_version INTEGER NOT NULL,
            generation VARCHAR NOT NULL,      -- JSON GenerationSettings
            aggregates VARCHAR,               -- JSON means with 95% CIs, once scored
            created_at TIMESTAMP DEFAULT current_timestamp
        )"""
    )
    con.execute(
        """CREATE TABLE eval_results (
            run_id VARCHAR NOT NULL, example_id BIGINT NOT NULL,
            summary VARCHAR NOT NULL,
            rouge1 DOUBLE, rouge2 DOUBLE, rougeL DOUBLE, rougeLsum DOUBLE,
            similarity DOUBLE,                -- NULL when scored without embeddings
            summary_words INTEGER, reference_words INTEGER, compression DOUBLE,
            novel_bigrams DOUBLE,
            unsupported_facts INTEGER,
            unsupported_numbers INTEGER,      -- of which numbers, dates and amounts
            unsupported VARCHAR,              -- JSON list of the facts not in the document
            cut_off INTEGER,                  -- 1: generation stopped at max_new_tokens
            PRIMARY KEY (run_id, example_id)
        )"""
    )
    con.execute("CREATE SEQUENCE preference_ids START 1")
    con.execute(
        """CREATE TABLE preferences (
            id BIGINT PRIMARY KEY DEFAULT nextval('preference_ids'),
            example_id BIGINT NOT NULL,
            run_a VARCHAR NOT NULL, run_b VARCHAR NOT NULL,  -- the two evaluations, a < b
            left_run VARCHAR NOT NULL,        -- the one shown on the left
            winner_run VARCHAR,               -- NULL: a tie
            reason VARCHAR,
            reviewer VARCHAR NOT NULL,
            created_at TIMESTAMP DEFAULT current_timestamp,
            UNIQUE (run_a, run_b, example_id, reviewer)  -- one vote per reviewer and document
        )"""
    )
    con.execute("CREATE SEQUENCE promotion_ids START 1")
    con.execute(
        """CREATE TABLE promotions (
            id BIGINT PRIMARY KEY DEFAULT nextval('promotion_ids'),
            model_id VARCHAR NOT NULL, previous_model_id VARCHAR,
            run_id VARCHAR, previous_run_id VARCHAR,  -- the evaluations compared
            evidence VARCHAR,                 -- JSON: metric, difference, CI, p-value
            override_reason VARCHAR,          -- set when promoted without beating it
            promoted_by VARCHAR,
            created_at TIMESTAMP DEFAULT current_timestamp
        )"""
    )


from store.later_migrations import (  # noqa: E402
    m005_history,
    m006_security,
    m007_audit,
    m008_serving,
    m009_feedback,
    m010_merge_duplicate_examples,
    m011_unique_content_hash,
)

MIGRATIONS = [
    m001_core,
    m002_labelling,
    m003_sweeps,
    m004_evaluation,
    m005_history,
    m006_security,
    m007_audit,
    m008_serving,
    m009_feedback,
    m010_merge_duplicate_examples,
    m011_unique_content_hash,
]
