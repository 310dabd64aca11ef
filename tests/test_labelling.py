"""The labelling loop in the store: queues, corrections with lineage, agreement, ingestion."""

import json

import numpy as np
import pandas as pd
import pytest

from engine.labelling.highlight import source_sentences
from engine.labelling.review import agreement, mark_unusable, next_draft, save_review, skip
from engine.labelling.runs import ingest_drafts
from engine.models.registry import current_prompt, save_prompt
from store import documents as docs
from store import examples as ex
from store import labelling as label_store


def seed_drafts(con, n=4):
    docs.add_documents(
        con,
        pd.DataFrame(
            {
                "id": [f"d{i}" for i in range(n)],
                "raw_text": [f"Document {i}." for i in range(n)],
                "title": None,
                "source": "t",
                "ref": "t",
                "n_words": 2,
                "import_id": 1,
            }
        ),
    )
    label_store.add_drafts(
        con,
        pd.DataFrame(
            {
                "document_id": [f"d{i}" for i in range(n)],
                "summary": [f"Draft {i}" for i in range(n)],
                "model_id": "m",
                "prompt_version": 1,
                "run_id": "r1",
                "n_generated_tokens": 3,
                "truncated": False,
            }
        ),
    )


def test_two_reviewers_queues_do_not_collide(con):
    seed_drafts(con)
    a, b = next_draft(con, "ann"), next_draft(con, "bob")
    assert a["id"] != b["id"]
    assert next_draft(con, "ann")["id"] == a["id"]  # still hers until she acts
    save_review(con, a["id"], "ann", "Fixed summary", rating=4)
    c = next_draft(con, "ann")
    assert c["id"] not in (a["id"], b["id"])


def test_overlap_hands_a_draft_to_two_reviewers(con):
    seed_drafts(con, 1)
    assert next_draft(con, "ann", overlap=2)["id"] == next_draft(con, "bob", overlap=2)["id"]
    assert next_draft(con, "cyd", overlap=2) is None


def test_correction_becomes_accepted_example_with_lineage(con):
    seed_drafts(con, 1)
    draft = next_draft(con, "ann")
    example_id = save_review(con, draft["id"], "ann", " The corrected summary. ", 5, True)
    row = ex.get_example(con, example_id)
    assert (row["summary"], row["status"], row["origin"]) == (
        "The corrected summary.",
        "accepted",
        "human-corrected",
    )
    assert (row["parent_id"], row["updated_by"]) == (draft["id"], "ann")
    review = con.execute(
        "SELECT reviewer, rating, edited_summary, example_id FROM reviews"
    ).fetchone()
    assert review == ("ann", 5, "The corrected summary.", example_id)
    with pytest.raises(ValueError, match="empty"):
        save_review(con, draft["id"], "ann", "   ")


def test_skip_returns_draft_to_others_and_unusable_records(con):
    seed_drafts(con, 2)
    first = next_draft(con, "ann")
    skip(con, first["id"], "ann")
    assert next_draft(con, "ann")["id"] != first["id"]
    assert next_draft(con, "bob")["id"] == first["id"]
    mark_unusable(con, first["id"], "bob", 1)
    assert label_store.review_counts(con)["action"].tolist() == ["skipped", "unusable"]


def test_agreement_per_reviewer_pair(con):
    seed_drafts(con, 4)
    for reviewer, ratings in (("ann", [1, 2, 4, 5]), ("bob", [1, 2, 4, 5]), ("cyd", [5, 4, 2, 1])):
        for i, r in enumerate(ratings, start=1):
            label_store.add_review(con, i, reviewer, "saved", r)
    table = agreement(con).set_index("reviewers")["alpha"]
    assert table["ann · bob"] == pytest.approx(1.0)
    assert table["ann · cyd"] < 0


def test_ingest_drafts_from_a_run_folder_is_idempotent(con, tmp_path):
    docs.add_documents(
        con,
        pd.DataFrame(
            {
                "id": ["d1"],
                "raw_text": ["x"],
                "title": None,
                "source": "t",
                "ref": "t",
                "n_words": 1,
                "import_id": 1,
            }
        ),
    )
    (tmp_path / "drafts.jsonl").write_text(
        json.dumps(
            {"document_id": "d1", "summary": "s", "n_generated_tokens": 2, "truncated": True}
        )
        + "\n"
        + '{"document_id": "d2", "summ'
    )  # a line the worker is still writing
    run = {
        "id": "r9",
        "run_dir": str(tmp_path),
        "config": json.dumps({"model_id": "m", "prompt_version": 3}),
    }
    assert ingest_drafts(con, run) == 1
    assert ingest_drafts(con, run) == 0
    assert label_store.get_draft(con, 1)["truncated"]


def test_prompt_versions(con):
    version, text = current_prompt(con)
    assert version == 1 and "Summarize" in text
    assert save_prompt(con, text) == 1
    assert save_prompt(con, "Summarize in one sentence.", "ann") == 2
    assert current_prompt(con) == (2, "Summarize in one sentence.")


def test_source_sentences_marks_what_the_summary_uses():
    doc = "The driver ran a red light on Main Street. The weather was sunny. Damages were $5,000."
    marks = dict(source_sentences(doc, "A driver ran a red light on Main Street; damages $5,000."))
    assert marks["The driver ran a red light on Main Street."]
    assert not marks["The weather was sunny."]


def test_only_the_owner_or_an_admin_cancels_or_resumes_a_run_audited_within_the_cap(
    con, home, monkeypatch
):
    from engine.audit import entries
    from engine.auth import PermissionDenied
    from engine.jobs import runqueue
    from store import runs as runs_store

    monkeypatch.setattr(runqueue, "pump", lambda con: [])  # keep runs queued
    rita, sam = {"name": "rita", "role": "reviewer"}, {"name": "sam", "role": "reviewer"}
    ada = {"name": "ada", "role": "admin"}
    admins, _ = runqueue.new_run(con, "draft", {}, "ada", ["--version"])
    ritas, _ = runqueue.new_run(con, "draft", {}, "rita", ["--version"])
    for run_id in (admins, ritas):
        with pytest.raises(PermissionDenied, match="only they or an admin"):
            runqueue.cancel_run(con, run_id, sam)
    with pytest.raises(PermissionDenied, match="log in"):
        runqueue.cancel_run(con, ritas, None)
    assert runs_store.get_run(con, admins)["state"] == "queued"
    runqueue.cancel_run(con, ritas, rita)
    with pytest.raises(PermissionDenied):
        runqueue.resume(con, ritas, sam)
    other, _ = runqueue.new_run(con, "draft", {}, "rita", ["--version"])  # fills her cap
    with pytest.raises(ValueError, match="rita already has 1 drafting run"):
        runqueue.resume(con, ritas, ada)  # an admin resuming it still counts it as hers
    runqueue.cancel_run(con, other, ada)
    runqueue.resume(con, ritas, rita)
    assert runs_store.get_run(con, ritas)["state"] == "queued"
    log = entries(con, actions=("cancel_run", "resume_run"))
    assert sorted(zip(log["username"], log["action"], log["target"])) == [
        ("ada", "cancel_run", other),
        ("rita", "cancel_run", ritas),
        ("rita", "resume_run", ritas),
    ]


def test_rejected_documents_and_extra_duplicates_are_never_drafted_nor_ranked(con):
    from engine.labelling import ordering

    con.execute(
        "INSERT INTO documents (id, raw_text, clean_text, source, n_words, cluster_id) VALUES "
        "('a1', 'x', 'Alpha case.', 's', 2, 'a1'), ('a2', 'x', 'Alpha case!', 's', 2, 'a1'), "
        "('b1', 'x', 'Beta case.', 's', 2, 'b1'), ('b2', 'x', 'Beta case!', 's', 2, 'b1'), "
        "('c1', 'x', 'Gamma case.', 's', 2, 'c1'), ('r1', 'x', 'Rejected.', 's', 1, 'r1')"
    )
    rows = [  # cluster a resolved: a1's copy rejected, a2 kept; cluster b not resolved yet
        ("a1", "rejected", "h1"),
        ("a2", "accepted", "h2"),
        ("b1", "pending", "h3"),
        ("b2", "pending", "h4"),
        ("r1", "rejected", "h5"),
    ]
    for doc, status, digest in rows:
        con.execute(
            "INSERT INTO examples (document_id, origin, source, status, content_hash) "
            "VALUES (?, 'imported', 's', ?, ?)",
            [doc, status, digest],
        )
    to_draft = set(label_store.documents_to_draft(con)["document_id"])
    assert to_draft == {"a2", "b1", "c1"}  # one per cluster, never a rejected one
    assert set(label_store.documents_to_draft(con, only_missing=False)["document_id"]) == to_draft
    ranked = ordering.refresh(con, embed=lambda texts: np.eye(len(texts), 384))
    assert set(ranked["document_id"]) <= to_draft
    assert set(label_store.label_candidates(con, 100)["document_id"]) == to_draft
