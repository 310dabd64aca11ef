"""The review queue: hand each reviewer one draft at a time (two reviewers are never handed the
same draft unless the overlap asks for it), and turn their ratings and corrections into accepted,
human-corrected examples linked to their draft; agreement between reviewers as Krippendorff's
alpha. Each decision records its effort (engine/labelling/savings.py): the seconds from opening
the draft (`opened_at`, else when it was handed out) and the word edit distance to the saved
text."""

from __future__ import annotations

import threading
import time

import pandas as pd

from engine.data.keys import content_hash
from engine.labelling.savings import word_edit_distance
from store import examples as examples_store
from store import labelling as label_store
from store import transaction

_queue_lock = threading.Lock()  # one process serves every reviewer: hand out drafts one at a time


def next_draft(con, reviewer: str, overlap: int = 1) -> dict | None:
    with _queue_lock, transaction(con):
        return label_store.next_for_reviewer(con, reviewer, overlap)


def save_review(
    con,
    draft_id: int,
    reviewer: str,
    summary: str,
    rating: int | None = None,
    faithful: bool | None = None,
    complete: bool | None = None,
    concise: bool | None = None,
    opened_at: float | None = None,
) -> int:
    """The reviewed (and possibly edited) summary becomes an accepted example, origin
    'human-corrected', linked to its draft, unless the same document and summary are stored
    already (another reviewer's identical save, an import): then the review is linked to that
    example, which stays as it is. `opened_at`: when the reviewer opened the draft (Unix
    seconds). Returns the example id."""
    summary = summary.strip()
    if not summary:
        raise ValueError("The summary is empty: write one, or mark the draft unusable.")
    draft = label_store.get_draft(con, draft_id)
    document_id = draft["document_id"]
    with transaction(con):
        example_id, _ = examples_store.add_example(
            con, document_id, summary, content_hash(document_id, summary), origin="human-corrected",
            source="review", status="accepted", parent_id=draft_id, user=reviewer,
        )  # fmt: skip
        edited = summary if summary != draft["summary"].strip() else None
        label_store.add_review(
            con,
            draft_id,
            reviewer,
            "saved",
            rating,
            faithful,
            complete,
            concise,
            edited,
            example_id,
            review_seconds(con, draft_id, reviewer, opened_at),
            word_edit_distance(draft["summary"], summary),
        )
    return example_id


def review_seconds(con, draft_id: int, reviewer: str, opened_at: float | None) -> float | None:
    """Seconds from opening the draft to now: from `opened_at` (the page's clock) when given,
    else from when the queue handed the draft to the reviewer."""
    if opened_at is not None:
        return max(0.0, time.time() - opened_at)
    return label_store.seconds_since_assigned(con, draft_id, reviewer)


def mark_unusable(
    con, draft_id: int, reviewer: str, rating: int | None = None, opened_at: float | None = None
):
    seconds = review_seconds(con, draft_id, reviewer, opened_at)
    label_store.add_review(con, draft_id, reviewer, "unusable", rating, seconds=seconds)


def skip(con, draft_id: int, reviewer: str):
    with transaction(con):
        label_store.add_review(con, draft_id, reviewer, "skipped")
        label_store.release(con, draft_id, reviewer)


def agreement(con) -> pd.DataFrame:
    """Krippendorff's alpha (interval) on 1–5 ratings for each pair of reviewers who rated at
    least two drafts in common."""
    import krippendorff

    ratings = label_store.ratings_table(con)
    reviewers = sorted(ratings["reviewer"].unique())
    table = ratings.pivot_table(index="reviewer", columns="draft_id", values="rating")
    rows = []
    for i, a in enumerate(reviewers):
        for b in reviewers[i + 1 :]:
            pair = table.loc[[a, b]].dropna(axis=1)
            if pair.shape[1] < 2:
                continue
            values = pair.to_numpy(dtype=float)
            alpha = (
                1.0
                if (values == values[0, 0]).all()
                else krippendorff.alpha(reliability_data=values, level_of_measurement="interval")
            )
            rows.append({"reviewers": f"{a} · {b}", "drafts": pair.shape[1], "alpha": alpha})
    return pd.DataFrame(rows, columns=["reviewers", "drafts", "alpha"])


def corrected_examples(con) -> int:
    return examples_store.count_examples(con, examples_store.ExampleFilter(sources=("review",)))
