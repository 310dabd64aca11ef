"""Drafting runs from the app's side: export the documents to draft into a run folder and queue
it; the worker (engine/labelling/worker.py) never opens the database: it reads documents.jsonl and
appends drafts.jsonl, which `ingest_drafts` stores. Drafting waits in the shared job queue
(engine/jobs/runqueue.py) like training and evaluation; each user may have at most
`max_drafting_runs()` drafting runs queued or running, and two runs never draft the same document.

Run: python -m engine draft [--model ID] [--limit N]
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from engine.jobs import runqueue
from engine.models.generation import GenerationSettings
from engine.models.registry import current_prompt, resolve
from store import labelling as label_store
from store import runs as runs_store


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
    with runqueue.preparing():
        run_id, run_dir = runqueue.new_run(
            con, "draft", config, user, ["draft-worker", "{run_dir}"]
        )
        docs.to_json(run_dir / "documents.jsonl", orient="records", lines=True, force_ascii=False)
        runqueue.pump(con)
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
            "mean_logprob": df["mean_logprob"] if "mean_logprob" in df else None,
        }
    )
    return label_store.add_drafts(con, drafts)
