"""Train/validation/test assignments, frozen dataset versions and app settings."""

from __future__ import annotations

import pandas as pd

TEST_LOCK = "test_split_locked"


def split_units(con) -> pd.DataFrame:
    """Examples eligible for a split (with a summary, not rejected) and their group: the
    duplicate cluster of their document, or the document itself."""
    return con.execute(
        """SELECT e.id, coalesce(d.cluster_id, d.id) AS group_key, e.split
           FROM examples e JOIN documents d ON d.id = e.document_id
           WHERE e.summary IS NOT NULL AND e.status <> 'rejected' ORDER BY e.id"""
    ).fetchdf()


def set_splits(con, splits: pd.DataFrame) -> int:
    """splits: columns id, split (NULL clears). Returns rows changed."""
    con.register("_splits", splits)
    try:
        return con.execute(
            "UPDATE examples SET split = s.split FROM _splits s "
            "WHERE examples.id = s.id AND examples.split IS DISTINCT FROM s.split"
        ).fetchone()[0]
    finally:
        con.unregister("_splits")


def freeze_dataset(con, note: str = "", statuses: tuple[str, ...] = ("accepted",)) -> int:
    """Copy the split examples with these statuses into a new dataset version; return its id."""
    dataset_id = con.execute(
        "INSERT INTO dataset_versions (note) VALUES (?) RETURNING id", [note]
    ).fetchone()[0]
    con.execute(
        """INSERT INTO dataset_examples
           SELECT ?, e.id, e.split, d.clean_text, e.summary, d.title
           FROM examples e JOIN documents d ON d.id = e.document_id
           WHERE e.split IS NOT NULL AND e.summary IS NOT NULL
             AND e.status IN (SELECT unnest(?)) ORDER BY e.id""",
        [dataset_id, list(statuses)],
    )
    con.execute(
        """UPDATE dataset_versions SET
             n_train = (SELECT count(*) FILTER (split = 'train') FROM dataset_examples
                        WHERE dataset_id = $1),
             n_validation = (SELECT count(*) FILTER (split = 'validation') FROM dataset_examples
                        WHERE dataset_id = $1),
             n_test = (SELECT count(*) FILTER (split = 'test') FROM dataset_examples
                        WHERE dataset_id = $1)
           WHERE id = $1""",
        [dataset_id],
    )
    return dataset_id


def unstarted_datasets(con) -> list[int]:
    """Dataset versions frozen for training runs that were cancelled before they started (no
    event was ever read from them) and that nothing else uses: no evaluation, no sweep, no
    other run. Each is a copy nobody trained on, evaluated or will: safe to drop."""
    rows = con.execute(
        """WITH named AS (
             SELECT id, state, events_offset, kind,
                    TRY_CAST(coalesce(json_extract_string(config, '$.dataset_version'),
                                      json_extract_string(config, '$.dataset_id')) AS BIGINT) AS ds
             FROM runs)
           SELECT DISTINCT n.ds FROM named n JOIN dataset_versions v ON v.id = n.ds
           WHERE n.kind = 'train' AND n.state = 'cancelled' AND n.events_offset = 0
             AND NOT EXISTS (SELECT 1 FROM evaluations e WHERE e.dataset_id = n.ds)
             AND NOT EXISTS (SELECT 1 FROM sweeps s WHERE s.dataset_id = n.ds)
             AND NOT EXISTS (SELECT 1 FROM named o WHERE o.ds = n.ds AND NOT
                             (o.kind = 'train' AND o.state = 'cancelled'
                              AND o.events_offset = 0))
           ORDER BY 1"""
    ).fetchall()
    return [int(r[0]) for r in rows]


def drop_dataset(con, dataset_id: int):
    """Delete a dataset version and its rows (only for one `unstarted_datasets` returned)."""
    con.execute("DELETE FROM dataset_examples WHERE dataset_id = ?", [dataset_id])
    con.execute("DELETE FROM dataset_versions WHERE id = ?", [dataset_id])


def test_split_key(con, dataset_id: int) -> str:
    """A fingerprint of a version's test split: its examples' ids, documents and reference
    summaries. Two versions with the same key hold the same test documents and references, so
    an evaluation made on one is an evaluation on the other."""
    row = con.execute(
        """SELECT count(*), coalesce(bit_xor(hash(example_id, document, summary)), 0)
           FROM dataset_examples WHERE dataset_id = ? AND split = 'test'""",
        [dataset_id],
    ).fetchone()
    return f"{row[0]}:{row[1]}"


def list_datasets(con) -> pd.DataFrame:
    return con.execute("SELECT * FROM dataset_versions ORDER BY id DESC").fetchdf()


def dataset_counts(con, dataset_id: int) -> tuple[int, int, int]:
    """(n_train, n_validation, n_test) of a frozen dataset version."""
    return con.execute(
        "SELECT n_train, n_validation, n_test FROM dataset_versions WHERE id = ?", [dataset_id]
    ).fetchone()


def dataset_rows(con, dataset_id: int) -> pd.DataFrame:
    return con.execute(
        "SELECT example_id, split, document, summary, title FROM dataset_examples "
        "WHERE dataset_id = ? ORDER BY example_id",
        [dataset_id],
    ).fetchdf()


def get_setting(con, key: str, default: str | None = None) -> str | None:
    row = con.execute("SELECT value FROM settings WHERE key = ?", [key]).fetchone()
    return row[0] if row else default


def set_setting(con, key: str, value: str):
    con.execute(
        "INSERT INTO settings VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [key, value],
    )


def accepted_counts(con) -> dict:
    """Accepted examples by side (train, validation, test) and those a training run leaves out:
    accepted with a summary but no side (unsplit), accepted without a summary (no_summary); and
    examples with a summary not accepted yet (not_accepted: pending or needing an edit)."""
    row = con.execute(
        """SELECT count(*) FILTER (accepted AND split = 'train'),
                  count(*) FILTER (accepted AND split = 'validation'),
                  count(*) FILTER (accepted AND split = 'test'),
                  count(*) FILTER (accepted AND split IS NULL),
                  count(*) FILTER (status = 'accepted' AND summary IS NULL),
                  count(*) FILTER (summary IS NOT NULL AND status IN ('pending', 'needs-edit'))
           FROM (SELECT *, status = 'accepted' AND summary IS NOT NULL AS accepted FROM examples)"""
    ).fetchone()
    keys = ("train", "validation", "test", "unsplit", "no_summary", "not_accepted")
    return dict(zip(keys, (int(n) for n in row)))


def is_test_locked(con) -> bool:
    """True once a model has been evaluated (on a frozen copy of the test split) or the lock was
    set by hand: from then on a full re-split is refused."""
    if get_setting(con, TEST_LOCK) == "1":
        return True
    return con.execute("SELECT EXISTS (SELECT 1 FROM evaluations)").fetchone()[0]


def count_unclustered(con) -> int:
    """Documents added since the last duplicate pass."""
    return con.execute("SELECT count(*) FROM documents WHERE cluster_id IS NULL").fetchone()[0]


def clear_splits(con):
    con.execute("UPDATE examples SET split = NULL WHERE split IS NOT NULL")
