"""The store: migrations, documents, examples, filters, splits and dataset versions."""

import pandas as pd
import pytest

import store
from store import documents as docs
from store import duplicates as dups
from store import examples as ex
from store import splits


def add(con, rows):
    """rows: (doc_id, text, summary) tuples."""
    d = pd.DataFrame(
        {
            "id": [r[0] for r in rows],
            "raw_text": [r[1] for r in rows],
            "title": [f"Title {r[0]}" for r in rows],
            "source": "test.jsonl",
            "ref": [f"test.jsonl:{i}" for i, _ in enumerate(rows, 1)],
            "n_words": [len(r[1].split()) for r in rows],
            "import_id": 1,
        }
    )
    e = pd.DataFrame(
        {
            "document_id": [r[0] for r in rows],
            "summary": [r[2] for r in rows],
            "origin": "imported",
            "source": "test.jsonl",
            "status": "pending",
            "flags": [[] for _ in rows],
            "content_hash": [r[0] + (r[2] or "") for r in rows],
            "n_summary_words": [len((r[2] or "").split()) for r in rows],
        }
    )
    return docs.add_documents(con, d), ex.add_examples(con, e)


def test_migrate_blank_database_creates_schema_and_records_it(con):
    tables = {r[0] for r in con.execute("SHOW TABLES").fetchall()}
    assert {"documents", "document_versions", "examples", "dataset_versions", "settings"} <= tables
    names = [r[0] for r in con.execute("SELECT name FROM _migrations").fetchall()]
    assert names[:5] == [
        "m001_core",
        "m002_labelling",
        "m003_sweeps",
        "m004_evaluation",
        "m005_history",
    ]
    assert names == [fn.__name__ for fn in store.db.MIGRATIONS]  # all applied, in order
    assert store.migrate(con) == []  # already up to date


def test_upgrade_from_the_previous_version(monkeypatch):
    import duckdb

    from store import db
    from store.migrations import MIGRATIONS

    old = duckdb.connect(":memory:")
    monkeypatch.setattr(db, "MIGRATIONS", MIGRATIONS[:3])
    assert db.migrate(old) == ["m001_core", "m002_labelling", "m003_sweeps"]
    old.execute("INSERT INTO settings VALUES ('kept', 'yes')")
    monkeypatch.setattr(db, "MIGRATIONS", MIGRATIONS)
    assert db.migrate(old) == [fn.__name__ for fn in MIGRATIONS[3:]]
    assert old.execute("SELECT value FROM settings").fetchone() == ("yes",)
    assert old.execute("SELECT count(*) FROM eval_results").fetchone() == (0,)


def test_connect_file_twice_upgrades_nothing(tmp_path):
    path = tmp_path / "db" / "t.duckdb"
    store.connect(path).close()
    again = store.connect(path)
    assert store.migrate(again) == []


def test_add_documents_and_examples_are_idempotent(con):
    assert add(con, [("a", "doc a text", "sum a"), ("b", "doc b", None)]) == (2, 2)
    assert add(con, [("a", "doc a text", "sum a"), ("c", "doc c", "sum c")]) == (1, 1)
    assert ex.count_examples(con) == 3


def test_transaction_rolls_back_everything(con):
    with pytest.raises(RuntimeError):
        with store.transaction(con):
            add(con, [("a", "doc a", "s")])
            raise RuntimeError("boom")
    assert ex.count_examples(con) == 0


def test_filters_and_pagination(con):
    add(con, [(f"d{i:03}", f"document number {i} " * (i + 1), f"summary {i}") for i in range(120)])
    assert ex.count_examples(con, ex.ExampleFilter(search="number 7 ")) >= 1
    page = ex.page_examples(con, ex.ExampleFilter(), offset=100, limit=50)
    assert len(page) == 20
    assert ex.count_examples(con, ex.ExampleFilter(min_words=300)) == 120 - 99
    ids = ex.ids_where(con, ex.ExampleFilter(max_words=6))
    assert ex.set_status(con, ids, "accepted", "tester") == len(ids) == 2
    assert ex.count_examples(con, ex.ExampleFilter(statuses=("accepted",))) == 2
    assert ex.add_tag(con, ids, "short") == 2
    assert ex.add_tag(con, ids, "short") == 0
    assert ex.count_examples(con, ex.ExampleFilter(tag="short")) == 2
    assert ex.tags_in_use(con) == ["short"]
    with pytest.raises(ValueError, match="Unknown status"):
        ex.set_status(con, ids, "great")


def test_update_summary_and_flags(con):
    add(con, [("a", "doc a", "old")])
    (example_id,) = ex.ids_where(con, ex.ExampleFilter())
    ex.update_summary(con, example_id, "a new summary", "ann")
    ex.set_flags(con, pd.DataFrame({"id": [example_id], "flags": [["short_document"]]}))
    row = ex.get_example(con, example_id)
    assert (row["summary"], row["updated_by"], list(row["flags"])) == (
        "a new summary",
        "ann",
        ["short_document"],
    )
    assert ex.count_examples(con, ex.ExampleFilter(flag="short_document")) == 1
    assert ex.flag_counts(con).to_dict("records") == [{"flag": "short_document", "n": 1}]


def test_clean_versions_keep_raw_text(con):
    add(con, [("a", "RAW  text", "s")])
    changed = docs.save_clean_texts(con, pd.DataFrame({"id": ["a"], "text": ["RAW text"]}), "k1")
    assert changed == 1
    assert docs.save_clean_texts(con, pd.DataFrame({"id": ["a"], "text": ["RAW text"]}), "k1") == 0
    d = docs.get_document(con, "a")
    assert (d["raw_text"], d["clean_text"], d["clean_version"]) == ("RAW  text", "RAW text", 1)
    assert docs.document_versions(con, "a")["version"].tolist() == [1]


def test_iter_texts_pages_through_everything(con):
    add(con, [(f"d{i:03}", f"text {i}", None) for i in range(23)])
    batches = list(docs.iter_texts(con, batch_size=10))
    assert [len(b) for b in batches] == [10, 10, 3]


def test_clusters_resolution_and_counts(con):
    add(con, [("a", "x " * 10, "s1"), ("b", "x " * 12, "s2"), ("c", "y", "s3")])
    docs.set_clusters(
        con,
        pd.DataFrame({"id": ["a", "b", "c"], "cluster_id": ["a", "a", "c"]}),
        pd.DataFrame({"a": ["a"], "b": ["b"], "kind": ["near"], "score": [0.9]}),
    )
    assert dups.count_clusters(con) == (1, 2)
    assert dups.cluster_ids(con) == ["a"]
    assert dups.reject_all_but_one(con, "longest") == 1
    members = dups.cluster_members(con, "a").set_index("document_id")
    assert members.loc["b", "status"] == "pending" and members.loc["a", "status"] == "rejected"


def test_freeze_dataset_copies_accepted_split_examples(con):
    add(con, [("a", "doc a", "s1"), ("b", "doc b", "s2"), ("c", "doc c", None)])
    rows = ex.page_examples(con, ex.ExampleFilter())
    ids = dict(zip(rows["document_id"], rows["id"]))
    splits.set_splits(con, pd.DataFrame({"id": [ids["a"], ids["b"]], "split": ["train", "test"]}))
    ex.set_status(con, [ids["a"], ids["b"]], "accepted")
    dataset_id = splits.freeze_dataset(con, "first")
    frozen = splits.dataset_rows(con, dataset_id)
    assert frozen[["split", "summary"]].values.tolist() == [["train", "s1"], ["test", "s2"]]
    ex.update_summary(con, ids["a"], "changed later")
    assert splits.dataset_rows(con, dataset_id)["summary"].iloc[0] == "s1"  # frozen
    info = splits.list_datasets(con).iloc[0]
    assert (info["n_train"], info["n_validation"], info["n_test"]) == (1, 0, 1)


def test_settings_roundtrip(con):
    assert splits.get_setting(con, "x", "d") == "d"
    splits.set_setting(con, "x", "1")
    splits.set_setting(con, "x", "2")
    assert splits.get_setting(con, "x") == "2"
