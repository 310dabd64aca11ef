"""The labelling loop in the store: queues, corrections with lineage, agreement, ingestion."""

import json

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
