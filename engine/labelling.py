"""The labelling loop over the store: start a drafting run, ingest its drafts, hand drafts to
reviewers, and turn their corrections into accepted training examples.

Drafting runs as a background worker (engine/draft.py) that never opens the database: it reads
documents.jsonl from its run folder and appends drafts.jsonl, which `ingest_drafts` stores. It
waits in the shared job queue (engine/runs.py) like training and evaluation, and each user may
have at most `max_drafting_runs()` drafting runs queued or running.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import xxhash

from engine import runs
from engine.generate import GenerationSettings
from engine.registry import current_prompt, resolve
from store import examples as examples_store
from store import labelling as label_store
from store import runs as runs_store
from store import transaction

_queue_lock = threading.Lock()  # one process serves every reviewer: hand out drafts one at a time


def max_drafting_runs() -> int:
    """How many drafting runs one user may have queued or running at once."""
    return max(1, int(os.environ.get("TUNELOOP_MAX_DRAFT_RUNS_PER_USER", "1")))


def check_drafting_limit(con, user: str | None):
    """Refuse a new drafting run for a user who already has the allowed number waiting or
    running: drafting goes through the shared queue, and one person must not fill it."""
    if user is None:  # the CLI: the machine's owner
        return
    mine = runs_store.list_runs(con, kind="draft", states=("queued", "running"))
    mine = mine[mine["created_by"] == user]
    if len(mine) >= max_drafting_runs():
        raise ValueError(
            f"You already have {len(mine)} drafting run(s) waiting or running "
            f"({', '.join(mine['id'])}): wait for it to finish or cancel it first."
        )


def documents_being_drafted(con) -> set[str]:
    """Documents that a queued or running drafting run already holds: a second run leaves them
    out, so two runs never draft the same document."""
    held: set[str] = set()
    live = runs_store.list_runs(con, kind="draft", states=("queued", "running"))
    for run_dir in live["run_dir"]:
        path = Path(run_dir) / "documents.jsonl"
        if path.exists():
            held |= set(pd.read_json(path, lines=True, dtype={"document_id": str})["document_id"])
    return held


def start_drafting(
    con,
    model_id: str,
    settings: GenerationSettings = GenerationSettings(),
    only_missing: bool = True,
    limit: int | None = None,
    user: str | None = None,
) -> str:
    """Export the documents to draft into a new run folder and start the worker."""
    check_drafting_limit(con, user)
    docs = label_store.documents_to_draft(con, only_missing=only_missing)
    docs = docs[~docs["document_id"].isin(documents_being_drafted(con))]
    docs = docs.head(limit) if limit else docs
    if docs.empty:
        raise ValueError(
            "No documents to draft: every document has a summary, a draft or a drafting run."
        )
    ref = resolve(con, model_id)
    version, instruction = current_prompt(con)
    config = {
        "model": ref.path,
        "adapter": ref.adapter,
        "model_id": model_id,
        "instruction": instruction,
        "prompt_version": version,
        "generation": asdict(settings),
        "n_documents": len(docs),
    }
    with runs.preparing():
        run_id, run_dir = runs.new_run(con, "draft", config, user, ["draft-worker", "{run_dir}"])
        docs.to_json(run_dir / "documents.jsonl", orient="records", lines=True, force_ascii=False)
        runs.pump(con)
    return run_id


def ingest_drafts(con, run: dict) -> int:
    """Store the drafts a run has written so far (safe to repeat)."""
    path = Path(run["run_dir"]) / "drafts.jsonl"
    if not path.exists():
        return 0
    lines = path.read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines if line.strip().endswith("}")]
    if not rows:
        return 0
    config = json.loads(run["config"])
    df = pd.DataFrame(rows)
    drafts = pd.DataFrame(
        {
            "document_id": df["document_id"],
            "summary": df["summary"],
            "model_id": config["model_id"],
            "prompt_version": config["prompt_version"],
            "run_id": run["id"],
            "n_generated_tokens": df["n_generated_tokens"],
            "truncated": df["truncated"].astype(bool),
        }
    )
    return label_store.add_drafts(con, drafts)


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
) -> int:
    """The reviewed (and possibly edited) summary becomes an accepted example, origin
    'human-corrected', linked to its draft. Returns the example id."""
    summary = summary.strip()
    if not summary:
        raise ValueError("The summary is empty: write one, or mark the draft unusable.")
    draft = label_store.get_draft(con, draft_id)
    content_hash = xxhash.xxh3_128_hexdigest(
        (draft["document_id"] + "\x00" + " ".join(summary.split())).encode()
    )
    with transaction(con):
        example_id = label_store.add_corrected_example(
            con, draft["document_id"], summary, draft_id, reviewer, content_hash
        )
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
        )
    return example_id


def mark_unusable(con, draft_id: int, reviewer: str, rating: int | None = None):
    label_store.add_review(con, draft_id, reviewer, "unusable", rating)


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
