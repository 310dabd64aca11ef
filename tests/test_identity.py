"""One home per identity rule (issue 19): a document's key and an example's content hash are
computed in one place (engine/data/keys.py), one store function adds examples and deduplicates
them by content hash, edits keep the hash current, and the schema refuses a second copy."""

from __future__ import annotations

import ast
import re

import pandas as pd
import pytest
import xxhash

from engine.auth import CONSOLE, PermissionDenied
from engine.data.editing import revert_change, save_example
from engine.data.imports import import_file
from engine.labelling import feedback, feedback_review
from engine.labelling.review import next_draft, save_review
from store import examples as ex
from store import feedback as fb_store
from store import history
from store import labelling as label_store
from tests.conftest import ROOT, write_jsonl

REVIEWER = {"name": "rita", "role": "reviewer"}
DOCUMENT = (
    "The tenant, Sam Lee, withheld rent for three months because the landlord did not repair "
    "the heating. The court held the withholding lawful and ordered the repairs within 30 days."
)
SUMMARY = "Rent withholding over unrepaired heating was lawful; repairs ordered."


def import_pair(con, tmp_path, summary=SUMMARY, name="pairs.jsonl", document=DOCUMENT):
    path = write_jsonl(tmp_path / name, [{"text": document, "summary": summary}])
    return import_file(con, path)


def example_ids(con) -> list[int]:
    return [r[0] for r in con.execute("SELECT id FROM examples ORDER BY id").fetchall()]


def only_example(con) -> int:
    (example_id,) = example_ids(con)
    return example_id


def draft_for(con, document_id: str, summary: str = "A model's draft.") -> None:
    label_store.add_drafts(
        con,
        pd.DataFrame(
            {
                "document_id": [document_id],
                "summary": [summary],
                "model_id": "m",
                "prompt_version": 1,
                "run_id": "r1",
                "n_generated_tokens": 3,
                "truncated": False,
            }
        ),
    )


# --- the keys, as they always were -----------------------------------------------------------


def test_the_keys_are_the_algorithms_stores_already_hold():
    from engine.data.keys import content_hash, document_key

    assert document_key(DOCUMENT) == xxhash.xxh3_128_hexdigest(DOCUMENT.encode("utf-8"))
    expected = xxhash.xxh3_128_hexdigest(b"doc\x00a b c")
    assert content_hash("doc", "  a  b\n c ") == expected  # whitespace normalised
    assert (
        content_hash("doc", None)
        == content_hash("doc", "")
        == xxhash.xxh3_128_hexdigest(b"doc\x00")
    )


def test_an_import_keys_documents_and_examples_with_the_keys(con, tmp_path):
    from engine.data.keys import content_hash, document_key

    import_pair(con, tmp_path)
    row = ex.get_example(con, only_example(con))
    assert row["document_id"] == document_key(DOCUMENT)
    assert row["content_hash"] == content_hash(row["document_id"], SUMMARY)


# --- (a) review -------------------------------------------------------------------------------


def test_reviewing_a_draft_into_a_stored_pair_adds_no_example(con, tmp_path):
    import_pair(con, tmp_path)
    existing = only_example(con)
    document_id = ex.get_example(con, existing)["document_id"]
    draft_for(con, document_id)
    draft = next_draft(con, "ann")
    saved = save_review(con, draft["id"], "ann", f"  {SUMMARY.replace(' ', '  ')} ", rating=4)
    assert saved == existing
    assert example_ids(con) == [existing]
    review = con.execute("SELECT action, example_id FROM reviews").fetchone()
    assert review == ("saved", existing)  # the decision is kept, linked to the stored example


def test_two_reviewers_saving_the_same_text_make_one_example(con, tmp_path):
    import_pair(con, tmp_path, summary=None)  # a document waiting for its reference
    document_id = ex.get_example(con, only_example(con))["document_id"]
    draft_for(con, document_id, "The draft both accept.")
    ann, bob = next_draft(con, "ann", overlap=2), next_draft(con, "bob", overlap=2)
    assert ann["id"] == bob["id"]  # overlap: both are handed it, to measure agreement
    first = save_review(con, ann["id"], "ann", "The draft both accept.", rating=5)
    second = save_review(con, bob["id"], "bob", "The draft both accept.", rating=4)
    assert second == first
    assert ex.count_examples(con, ex.ExampleFilter(sources=("review",))) == 1
    linked = con.execute("SELECT reviewer, example_id FROM reviews ORDER BY id").fetchall()
    assert linked == [("ann", first), ("bob", first)]
    created = history.example_history(con, first)
    assert created["field"].tolist() == ["created"] and created["username"].tolist() == ["ann"]
    (bobs,) = label_store.recent_reviews(con, "bob").to_dict("records")
    assert bobs["example_id"] == first and pd.isna(bobs["created_change"])  # ann's to withdraw


# --- (b) feedback -----------------------------------------------------------------------------


def queued(con, answer: str = "A model's answer.") -> int:
    item = {"source": "chat", "document": DOCUMENT, "prompt": "p", "model_id": "m",
            "answer": answer, "created_by": "rita"}  # fmt: skip
    return fb_store.add(con, item)


def test_a_feedback_correction_equal_to_a_stored_example_adds_none(con, tmp_path):
    import_pair(con, tmp_path)
    existing = only_example(con)
    fid = queued(con)
    fb_store.update_queued(con, fid, {"corrected": SUMMARY + " "})
    example_id, _ = feedback_review.accept(con, fid, REVIEWER)
    assert example_id == existing
    assert example_ids(con) == [existing]
    assert fb_store.get(con, fid)["example_id"] == existing


def test_a_chat_answer_accepted_twice_is_one_example(con):
    first, _ = feedback_review.accept(con, queued(con, SUMMARY), REVIEWER)
    again, _ = feedback_review.accept(con, queued(con, SUMMARY), REVIEWER, text=f" {SUMMARY}\n")
    assert again == first
    assert example_ids(con) == [first]


# --- (c) edits keep the content hash current --------------------------------------------------


def edit(con, example_id: int, summary: str, user=REVIEWER) -> int:
    state = ex.get_state(con, example_id)
    return save_example(
        con,
        example_id,
        summary=summary,
        status=state["status"],
        tags=list(state["tags"]),
        base_version=state["version"],
        user=user,
    )


def test_an_edited_summary_reimported_is_already_stored(con, tmp_path):
    from engine.data.keys import content_hash

    import_pair(con, tmp_path)
    example_id = only_example(con)
    edited = "Lawful rent withholding; the landlord must repair the heating."
    edit(con, example_id, edited)
    row = ex.get_example(con, example_id)
    assert row["content_hash"] == content_hash(row["document_id"], edited)
    report = import_pair(con, tmp_path, summary=edited, name="edited.jsonl")
    assert (report.n_new_documents, report.n_new_examples) == (0, 0)
    assert "(1 already stored)" in report.message()
    assert example_ids(con) == [example_id]


def test_a_revert_puts_the_content_hash_back(con, tmp_path):
    from engine.data.keys import content_hash

    import_pair(con, tmp_path)
    example_id = only_example(con)
    edit(con, example_id, "An edit to take back.")
    (change,) = history.example_history(con, example_id)["id"].tolist()
    revert_change(con, change, REVIEWER)
    row = ex.get_example(con, example_id)
    assert row["summary"] == SUMMARY
    assert row["content_hash"] == content_hash(row["document_id"], SUMMARY)
    assert import_pair(con, tmp_path, name="again.jsonl").n_new_examples == 0


def test_every_hash_matches_its_summary_after_edits_bulk_actions_undo_and_reverts(con, tmp_path):
    from engine.data.editing import bulk_add_tag, bulk_set_status, undo_batch
    from engine.data.keys import content_hash

    import_pair(con, tmp_path)
    import_pair(con, tmp_path, summary=None, name="more.jsonl", document=DOCUMENT + " Costs.")
    first, second = example_ids(con)
    edit(con, first, "First edit.")
    edit(con, second, "A reference at last.")
    edit(con, first, "Second edit.")
    batch, _ = bulk_set_status(con, [first, second], "accepted", CONSOLE)
    bulk_add_tag(con, [first, second], "checked", CONSOLE)
    undo_batch(con, batch, CONSOLE)
    latest = history.example_history(con, first).query("field == 'summary'")["id"].max()
    revert_change(con, int(latest), REVIEWER)  # back to "First edit."
    rows = ex.hash_inputs(con, [first, second]).to_dict("records")
    assert [r["summary"] for r in rows] == ["First edit.", "A reference at last."]
    assert all(r["content_hash"] == content_hash(r["document_id"], r["summary"]) for r in rows)


def test_an_edit_into_another_examples_text_is_refused(con, tmp_path):
    import_pair(con, tmp_path)
    import_pair(con, tmp_path, summary="A second reference.", name="second.jsonl")
    first, second = example_ids(con)
    with pytest.raises(ValueError, match=f"example {second} of this document already"):
        edit(con, first, " A second reference. ")
    assert ex.get_state(con, first)["summary"] == SUMMARY  # nothing changed
    assert history.example_history(con, first).empty


# --- (d) the migration merges stored duplicates -----------------------------------------------


def plant_duplicates(con):
    """Three examples of document "a": 1 and 2 with the same content hash (1 pending and
    tagged, 2 accepted from a review with history), 3 another summary; references to each."""
    con.execute(
        "INSERT INTO documents (id, raw_text, clean_text, source, n_words) "
        "VALUES ('a', 'doc a', 'doc a', 's', 2)"
    )
    rows = [  # id, summary, origin, source, status, tags, split
        (1, "same", "imported", "f.jsonl", "pending", ["x"], "train"),
        (2, "same", "human-corrected", "review", "accepted", ["y"], None),
        (3, "other", "imported", "f.jsonl", "pending", [], "train"),
    ]
    for i, summary, origin, source, status, tags, split in rows:
        con.execute(
            "INSERT INTO examples (id, document_id, summary, origin, source, status, tags, "
            "split, content_hash) VALUES (?, 'a', ?, ?, ?, ?, ?, ?, ?)",
            [i, summary, origin, source, status, tags, split, f"hash-{summary}"],
        )
    con.execute(
        "INSERT INTO example_history (example_id, field, before, after, username) VALUES "
        "(1, 'status', 'accepted', 'pending', 'ann'), (2, 'created', NULL, 'same', 'bob'), "
        "(3, 'status', 'accepted', 'pending', 'ann')"
    )
    con.execute(
        "INSERT INTO drafts (id, document_id, summary, model_id, prompt_version) "
        "VALUES (7, 'a', 'draft', 'm', 1)"
    )
    con.execute(
        "INSERT INTO reviews (draft_id, reviewer, rating, action, example_id) VALUES "
        "(7, 'bob', 4, 'saved', 2), (7, 'cyd', 5, 'saved', 1)"
    )
    con.execute(
        "INSERT INTO feedback (source, prompt, answer, status, example_id) "
        "VALUES ('chat', 'p', 'same', 'accepted', 1)"
    )
    con.execute(
        "INSERT INTO dataset_examples VALUES (1, 1, 'train', 'doc a', 'same', NULL), "
        "(1, 3, 'train', 'doc a', 'other', NULL)"
    )


def test_the_migration_merges_duplicates_keeping_their_history(monkeypatch):
    import duckdb

    from store import db, later_migrations
    from store.migrations import MIGRATIONS

    merge = later_migrations.m010_merge_duplicate_examples
    old = duckdb.connect(":memory:")
    monkeypatch.setattr(db, "MIGRATIONS", MIGRATIONS[: MIGRATIONS.index(merge)])
    db.migrate(old)
    plant_duplicates(old)
    monkeypatch.setattr(db, "MIGRATIONS", MIGRATIONS)
    applied = db.migrate(old)
    assert applied[:2] == ["m010_merge_duplicate_examples", "m011_unique_content_hash"]

    kept = old.execute(
        "SELECT id, status, split, list_sort(tags), version FROM examples ORDER BY id"
    ).fetchall()
    assert kept == [(2, "accepted", "train", ["x", "y"], 2), (3, "pending", "train", [], 1)]
    # The dropped copy's history, review and feedback now point at the one kept.
    moved = old.execute(
        "SELECT example_id, field, username, note FROM example_history ORDER BY id"
    ).fetchall()
    assert moved[:3] == [
        (2, "status", "ann", "from example 1, merged: the same document and summary"),
        (2, "created", "bob", None),
        (3, "status", "ann", None),
    ]
    assert moved[3][:3] == (2, "tags", None)  # the merged tags, recorded like any change
    reviews = old.execute("SELECT reviewer, example_id FROM reviews ORDER BY id").fetchall()
    assert reviews == [("bob", 2), ("cyd", 2)]
    assert old.execute("SELECT example_id FROM feedback").fetchall() == [(2,)]
    # Frozen dataset versions are copies: they keep the ids they were frozen with.
    frozen = old.execute("SELECT example_id FROM dataset_examples ORDER BY 1").fetchall()
    assert frozen == [(1,), (3,)]
    with pytest.raises(duckdb.ConstraintException):
        old.execute(
            "INSERT INTO examples (document_id, origin, source, content_hash) "
            "VALUES ('a', 'imported', 's', 'hash-other')"
        )


def test_a_fresh_store_has_the_unique_index(con):
    unique = con.execute(
        "SELECT is_unique FROM duckdb_indexes() WHERE table_name = 'examples' "
        "AND sql ILIKE '%content_hash%'"
    ).fetchall()
    assert unique == [(True,)]


# --- one insert path, one permission rule -----------------------------------------------------

_INSERT = re.compile(r"insert\s+into\s+examples\b", re.IGNORECASE)
_MIGRATIONS = {"store/migrations.py", "store/later_migrations.py"}


def test_only_add_examples_inserts_into_the_examples_table():
    found = set()
    for package in ("store", "engine", "ui", "pages"):
        for path in (ROOT / package).rglob("*.py"):
            relative = path.relative_to(ROOT).as_posix()
            if relative in _MIGRATIONS:
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if isinstance(node, ast.FunctionDef) and _INSERT.search(ast.unparse(node)):
                    found.add((relative, node.name))
    assert found == {("store/examples.py", "add_examples")}


def test_the_queue_settings_are_checked_by_engine_auth(con):
    from engine.labelling import ordering

    for change in (
        lambda user: feedback.set_sample_rate(con, user, 0.5),
        lambda user: ordering.set_order(con, user, priority=False),
    ):
        with pytest.raises(PermissionDenied, match=r"Your account \(reviewer\) cannot"):
            change(REVIEWER)
        with pytest.raises(PermissionDenied, match="log in"):
            change(None)
        change(CONSOLE)
