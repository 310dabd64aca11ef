"""The loop from use back to data: feedback on answers where they appear, reviewed into examples.

In Chat every answer can be rated (thumbs), corrected in place and, when it summarizes a
document, proposed as an example (`record_chat_feedback`). Requests to the API server from keys
that opted in to logging texts are sampled into the same queue (`sample_api_requests`: a
seeded share of the summaries they asked for; the app's poller calls it at most once a minute).
Reviewers work the queue on the Review page: rate, correct, accept or reject (`accept`,
`reject`), and each decision records its seconds and word edit distance like a draft's.

An accepted summary becomes an accepted example with its source (`chat`, `api`), checked like
an import: documents keyed by a hash of their text and examples by document + summary (the same
pair twice adds nothing), quality flags (engine/data/curation.py `refresh_flags`), and the
near-duplicate check of engine/data/similarity.py (exact and MinHash, the last detection's
threshold) that puts a new document in its duplicate cluster. It then gets a side like any new
example (engine/data/split.py `assign_splits`, the last split's settings), except that while the
test split is locked (a model was evaluated) feedback is dealt to train or validation only: a
reference anchored on one model's answer would favour that model in a comparison. A feedback
document that is a duplicate of a test document is refused (training on it would leak the test
split). Dataset versions already frozen are copies and never change.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace

import pandas as pd
import xxhash

from engine.audit import record
from engine.auth import PermissionDenied, check
from engine.data.curation import refresh_flags
from engine.data.dedupe import last_dedupe_settings
from engine.data.similarity import find_duplicates
from engine.data.split import assign_splits, last_split_settings
from engine.labelling.savings import word_edit_distance
from store import documents as docs_store
from store import examples as examples_store
from store import feedback as fb_store
from store import splits as splits_store
from store import transaction
from store.splits import get_setting, set_setting

SAMPLE_RATE = "feedback.api_sample_rate"  # setting: share of opted-in API summaries queued
DEFAULT_RATE = 0.1
LAST_REQUEST = "feedback.api_last_request"  # setting: the last api_requests id looked at
SAMPLE_EVERY_S = 60.0
_MARK = "\n\nDocument:\n"  # engine/models/prompts.py build_messages puts the document after it
_KEEP = object()
_clock = {"sampled": float("-inf")}


def document_of(prompt: str | None) -> str | None:
    """The document a summarize request (prompts.build_messages) asks about, else None."""
    if not isinstance(prompt, str) or _MARK not in prompt:
        return None
    return prompt.split(_MARK, 1)[1].strip() or None


def record_chat_feedback(
    con, user: dict, message_id: int, rating=_KEEP, corrected=_KEEP, propose: bool = False
) -> int:
    """Rate (1 thumbs up, 0 down, None cleared), correct or propose as an example one of the
    user's own chat answers; the first of these queues it. Returns the feedback id."""
    check(user, "chat")
    message = fb_store.chat_message(con, message_id)
    if message is None or message["username"] != user["name"] or message["role"] != "assistant":
        raise ValueError(f"Message {message_id} is not one of your chat answers.")
    if corrected is not _KEEP:
        corrected = (corrected or "").strip()
        if not corrected:
            raise ValueError("The correction is empty: write the answer as it should be.")
        corrected = None if corrected == message["content"].strip() else corrected
    document = document_of(message["asked"])
    if propose and document is None:
        raise ValueError("Only a summary of a document can become an example.")
    changes = {"rating": rating, "corrected": corrected}
    changes = {k: v for k, v in changes.items() if v is not _KEEP}
    if propose:
        changes["proposed"] = True
    with transaction(con):
        existing = fb_store.by_messages(con, [message_id]).get(message_id)
        if existing is None:
            return fb_store.add(
                con,
                changes
                | {
                    "source": "chat",
                    "document": document,
                    "prompt": message["asked"] or "",
                    "model_id": message["model_id"],
                    "answer": message["content"],
                    "created_by": user["name"],
                    "message_id": message_id,
                },
            )
        if existing["status"] != "queued":
            raise ValueError(f"This answer was already reviewed ({existing['status']}).")
        if changes:
            fb_store.update_queued(con, existing["id"], changes)
        return existing["id"]


def sample_rate(con) -> float:
    return float(get_setting(con, SAMPLE_RATE, str(DEFAULT_RATE)))


def set_sample_rate(con, user: dict | None, rate: float):
    """The share of opted-in API summaries queued for review (admins; audited)."""
    if user is None or user.get("role") != "admin":
        raise PermissionDenied("Only an admin can change how much API traffic is reviewed.")
    if not 0.0 <= rate <= 1.0:
        raise ValueError("The sample rate is a share between 0 (none) and 1 (every request).")
    with transaction(con):
        set_setting(con, SAMPLE_RATE, repr(float(rate)))
        record(con, user, "feedback_sampling", f"{rate:.0%}")


def _api_item(row) -> dict | None:
    """A queue item from a logged request, when it is a successful summary with its texts (a
    key that opted in) and one answer; else None."""
    if row.status >= 400 or not isinstance(row.request_text, str):
        return None
    if not isinstance(row.response_text, str) or row.response_text.startswith('["'):
        return None  # several prompts or choices: which answer belongs to which is lost
    document = None
    if row.path.endswith("/chat/completions"):
        try:
            messages = json.loads(row.request_text)
            document = document_of(messages[-1]["content"]) if messages else None
        except (ValueError, TypeError, KeyError, IndexError):
            return None
    elif row.path.endswith("/completions"):
        document = row.request_text.strip() or None  # the prompt is the document
    if document is None:
        return None
    return {
        "source": "api",
        "document": document,
        "prompt": row.request_text,
        "model_id": row.model_id,
        "answer": row.response_text,
        "created_by": row.key_name,
        "request_id": int(row.id),
    }


def _sampled(request_id: int, rate: float) -> bool:
    return xxhash.xxh64_intdigest(f"api-request:{request_id}".encode()) < rate * 2**64


def sample_api_requests(con, rate: float | None = None) -> int:
    """Queue a seeded share (`rate`, else the SAMPLE_RATE setting) of the summaries that keys
    with log_texts asked the API for since the last call; returns how many were queued."""
    rate = sample_rate(con) if rate is None else rate
    last = int(get_setting(con, LAST_REQUEST, "0"))
    if fb_store.last_api_request(con) <= last:
        return 0
    queued = 0
    with transaction(con):
        rows = fb_store.api_requests_after(con, last)
        for row in rows.itertuples():
            if _sampled(row.id, rate) and (item := _api_item(row)):
                fb_store.add(con, item)
                queued += 1
        set_setting(con, LAST_REQUEST, str(int(rows["id"].max())))
    return queued


def sample_in_background(con) -> int:
    """The poller's call: sample the API log at most once a minute (one query when idle)."""
    now = time.monotonic()
    if now - _clock["sampled"] < SAMPLE_EVERY_S:
        return 0
    _clock["sampled"] = now
    return sample_api_requests(con)


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


def _hash(text: str) -> str:  # the same keys as engine/data/imports.py
    return xxhash.xxh3_128_hexdigest(text.encode("utf-8"))


def _store_example(con, item: dict, summary: str, reviewer: str) -> int:
    """The document (found, or added and put in its duplicate cluster) and the accepted
    example with its flags and side; the example id. Raises ValueError for a duplicate of a
    test document while the test split is locked."""
    document_id = (
        _text(item["document_id"])
        or fb_store.document_with_text(con, item["document"])  # e.g. "summarize example 12"
        or _hash(item["document"])
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
    content_hash = _hash(document_id + "\x00" + " ".join(summary.split()))
    existing = fb_store.example_by_hash(con, content_hash)
    if existing is not None:
        return existing
    example_id = fb_store.add_example(
        con, document_id, summary, item["source"], content_hash, reviewer
    )
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


def loop_health(con) -> dict:
    """The loop on one page: examples created per week by source (cumulative), feedback per
    week with the share corrected, totals, the last training run and the model history."""
    from engine.labelling.savings import model_history

    examples = fb_store.examples_by_source(con)
    if len(examples):
        examples["total"] = examples.groupby("source")["examples"].cumsum()
    weekly = fb_store.feedback_by_week(con)
    items = int(weekly["items"].sum()) if len(weekly) else 0
    corrected = int(weekly["corrected"].sum()) if len(weekly) else 0
    return {
        "examples_by_source": examples,
        "feedback_by_week": weekly,
        "feedback": items,
        "share_corrected": corrected / items if items else None,
        "queued": fb_store.count_queued(con),
        "last_training": fb_store.last_training(con),
        "models": model_history(con),
    }
