"""Collecting feedback on answers where they appear, into the review queue.

In Chat every answer can be rated (thumbs), corrected in place and, when it summarizes a
document, proposed as an example (`record_chat_feedback`). Requests to the API server from keys
that opted in to logging texts are sampled into the same queue (`sample_api_requests`: a
seeded share of the summaries they asked for; the app's poller calls it at most once a minute).
Reviewers work the queue on the Review page (engine/labelling/feedback_review.py); the Loop page
shows how the loop is doing (engine/labelling/loop_health.py).
"""

from __future__ import annotations

import json
import time

import xxhash

from engine.audit import record
from engine.auth import check
from store import feedback as fb_store
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
    check(user, "queues")
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
