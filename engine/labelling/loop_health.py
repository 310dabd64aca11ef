"""The loop on one page (the Loop page): examples created per week by source, feedback per week
with the share corrected, what waits for review, the last retrain and the model history."""

from __future__ import annotations

from engine.labelling.savings import model_history
from store import feedback as fb_store


def loop_health(con) -> dict:
    """The loop on one page: examples created per week by source (cumulative), feedback per
    week with the share corrected, totals, the last training run and the model history."""
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
