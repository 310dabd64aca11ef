"""Reviewing the feedback queue: rate, correct, accept or reject an item (`accept`,
`reject`); each decision records its seconds and word edit distance like a draft's.

An accepted summary becomes an accepted example with its source (`chat`, `api`), checked like
an import: documents keyed by a hash of their text and examples by document + summary
(engine/data/keys.py; the same pair twice, or a pair already stored, adds nothing), quality flags
(engine/data/curation.py `refresh_flags`), and the near-duplicate check of
engine/data/similarity.py (exact and MinHash, the last detection's threshold) that puts a new
document in its duplicate cluster. It then gets a side like any new example
(engine/data/split.py `assign_splits`, the last split's settings), except that while the test
split is locked (a model was evaluated) feedback is dealt to train or validation only: a
reference anchored on one model's answer would favour that model in a comparison. A feedback
document that is a duplicate of a test document is refused (training on it would leak the test
split). Dataset versions already frozen are copies and never change.
"""

from __future__ import annotations

import time
from dataclasses import replace

import pandas as pd

from engine.auth import check
from engine.data.curation import refresh_flags
from engine.data.dedupe import last_dedupe_settings
from engine.data.keys import content_hash, document_key
from engine.data.similarity import find_duplicates
from engine.data.split import assign_splits, last_split_settings
from engine.labelling.savings import word_edit_distance
from store import documents as docs_store
from store import examples as examples_store
from store import feedback as fb_store
from store import splits as splits_store
from store import transaction


def next_item(con) -> dict | None:
    return fb_store.next_queued(con)


def _seconds(opened_at: float | None) -> float | None:
    return None if opened_at is None else max(0.0, time.time() - opened_at)


def accept(
    con,
    feedback_id: int,
    user: dict,
    text: str | None = None,
    review_rating: int | None = None,
    opened_at: float | None = None,
) -> tuple[int | None, list[str]]:
    """Accept a queued item with its final text (`text`, else the correction, else the
    answer). A summary becomes an accepted example; returns (example id or None for a plain
    chat answer, the example's quality flags)."""
    check(user, "review")
    item = fb_store.get(con, feedback_id)
    if item is None:
        raise ValueError(f"There is no feedback {feedback_id}.")
    final = (text if text is not None else _text(item["corrected"]) or item["answer"]).strip()
    if not final:
        raise ValueError("The text is empty: write one, or reject the item.")
    example_id, flags = None, []
    with transaction(con):
        if _text(item["document"]):
            example_id = _store_example(con, item, final, user["name"])
            flags = list(examples_store.get_example(con, example_id)["flags"])
        distance = word_edit_distance(item["answer"], final)
        n = fb_store.decide(
            con, feedback_id, "accepted", user["name"], final, review_rating,
            _seconds(opened_at), distance, example_id,
        )  # fmt: skip
        if n == 0:
            raise ValueError(f"Feedback {feedback_id} was decided by someone else meanwhile.")
    return example_id, flags


def reject(
    con,
    feedback_id: int,
    user: dict,
    review_rating: int | None = None,
    opened_at: float | None = None,
):
    check(user, "review")
    n = fb_store.decide(
        con, feedback_id, "rejected", user["name"], None, review_rating, _seconds(opened_at),
        None, None,
    )  # fmt: skip
    if n == 0:
        raise ValueError(f"Feedback {feedback_id} is not waiting for review.")


def _text(value) -> str | None:
    return value if isinstance(value, str) else None  # pandas gives NaN for NULL


def _store_example(con, item: dict, summary: str, reviewer: str) -> int:
    """The document (found, or added and put in its duplicate cluster) and the accepted
    example with its flags and side; the example id (the stored one when the same document and
    summary are stored already). Raises ValueError for a duplicate of a test document while the
    test split is locked."""
    document_id = (
        _text(item["document_id"])
        or fb_store.document_with_text(con, item["document"])  # e.g. "summarize example 12"
        or document_key(item["document"])
    )
    members = [document_id]
    if docs_store.get_document(con, document_id) is None:
        members += _add_document(con, document_id, item)
    locked = splits_store.is_test_locked(con)
    groups = {fb_store.group_of(con, m) for m in members}
    if locked and any("test" in fb_store.group_sides(con, g) for g in groups):
        raise ValueError(
            "This document is (a near duplicate of) a test document: training on it would leak "
            "the test split, and the test split is locked. Reject it, or keep it out of training."
        )
    example_id, new = examples_store.add_example(
        con, document_id, summary, content_hash(document_id, summary), origin="human-corrected",
        source=item["source"], status="accepted", user=reviewer,
    )  # fmt: skip
    if not new:
        return example_id
    refresh_flags(con, since_id=example_id)
    settings = last_split_settings(con)
    if locked:
        settings = replace(settings, test=0.0)
    sides = assign_splits(splits_store.split_units(con), settings)
    side = sides.loc[sides["id"] == example_id, "split"].iloc[0]
    splits_store.set_splits(con, pd.DataFrame({"id": [example_id], "split": [side]}))
    return example_id


def _add_document(con, document_id: str, item: dict) -> list[str]:
    """Store the feedback's document, then find its duplicates among the stored documents (exact
    and near, as a duplicate pass would) and put it in their cluster; returns them."""
    text = item["document"]
    docs_store.add_documents(
        con,
        pd.DataFrame(
            {
                "id": [document_id],
                "raw_text": [text],
                "title": [None],
                "source": [item["source"]],
                "ref": [f"feedback {item['id']}"],
                "n_words": [len(text.split())],
                "import_id": pd.array([None], dtype="Int64"),
            }
        ),
    )
    ids, texts = [document_id], [text]
    for batch in docs_store.iter_texts(con, "clean_text"):
        keep = batch["id"] != document_id
        ids += list(batch["id"][keep])
        texts += list(batch["text"][keep])
    settings = replace(last_dedupe_settings(con), semantic=False)
    labels, pairs = find_duplicates(texts, settings)
    members = [ids[k] for k in range(1, len(ids)) if labels[k] == labels[0]]
    found = [p for p in pairs if 0 in (p.a, p.b)]
    rows = pd.DataFrame(
        {
            "a": [min(ids[p.a], ids[p.b]) for p in found],
            "b": [max(ids[p.a], ids[p.b]) for p in found],
            "kind": [p.kind for p in found],
            "score": [float(p.score) for p in found],
        },
        columns=["a", "b", "kind", "score"],
    )
    cluster = fb_store.group_of(con, members[0]) if members else document_id
    fb_store.join_cluster(con, document_id, cluster, rows)
    return members
