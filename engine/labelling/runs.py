"""Drafting runs from the app's side: export the documents to draft into a run folder and queue
it; the worker (engine/labelling/worker.py) never opens the database: it reads documents.jsonl and
appends drafts.jsonl, which `ingest_drafts` stores. Drafting waits in the shared job queue
(engine/jobs/runqueue.py) like training and evaluation; each user may have at most
`max_drafting_runs()` drafting runs queued or running, and two runs never draft the same document.
Starting returns at once: `start_drafting` queues the run unprepared, and the app's poller
(engine/scheduler.py) calls `prepare_drafting`, which ranks the documents (embedding them can
take a minute on a CPU) and exports the run's share before the queue starts the worker.

Run: python -m engine draft [--model ID] [--limit N]
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from engine.errors import TuneloopError
from engine.jobs import runfolder, runqueue
from engine.labelling import ordering
from engine.models.generation import GenerationSettings
from engine.models.registry import current_prompt, resolve
from store import labelling as label_store
from store import runs as runs_store


def max_drafting_runs() -> int:
    """How many drafting runs one user may have queued or running at once."""
    return runqueue.max_runs_per_user("draft")


def check_drafting_limit(con, user: str | None):
    """Refuse a new drafting run for a user who already has the allowed number waiting or
    running (the rule lives in the queue, which also applies it to Resume)."""
    runqueue.check_user_limit(con, "draft", user)


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
    """Queue a drafting run and return at once: the checks here are cheap (the limit, that
    something is left to draft, the model's name); ranking the documents (which embeds them,
    up to a minute on a CPU) and exporting them is `prepare_drafting`, done by the app's
    poller before the queue starts the worker."""
    check_drafting_limit(con, user)
    _choose_documents(con, only_missing, limit, ordered=False)  # raises when none is left
    ref = resolve(con, model_id)
    version, instruction = current_prompt(con)
    config = {
        "model": ref.path,
        "adapter": ref.adapter,
        "model_id": model_id,
        "instruction": instruction,
        "prompt_version": version,
        "generation": asdict(settings),
        "only_missing": only_missing,
        "limit": limit,
    }
    with runqueue.preparing():
        run_id, _ = runqueue.new_run(
            con, "draft", config, user, ["draft-worker", "{run_dir}"], ready=False
        )
    return run_id


_SELECTION = ("only_missing", "limit")  # the app's choice of documents, not the worker's config


def _choose_documents(con, only_missing: bool, limit: int | None, ordered=None) -> pd.DataFrame:
    docs = label_store.documents_to_draft(con, only_missing=only_missing, ordered=ordered)
    docs = docs[~docs["document_id"].isin(documents_being_drafted(con))]
    docs = docs.head(limit) if limit else docs
    if docs.empty:
        raise TuneloopError(
            "No documents to draft: every document has a summary, a draft or a drafting run."
        )
    return docs


def prepare_drafting(con, run: dict, embed=None):
    """Rank the documents (when the order is stale) and export the run's share of them, most
    useful first, to documents.jsonl; the poller calls it, then the queue starts the worker."""
    ordering.refresh_if_stale(con, embed)
    config = json.loads(run["config"])
    config.pop("worker", None)  # the queue's, not the worker's
    docs = _choose_documents(con, config.get("only_missing", True), config.get("limit"))
    run_dir = Path(run["run_dir"])
    with runqueue.preparing():
        docs.to_json(run_dir / "documents.jsonl", orient="records", lines=True, force_ascii=False)
        worker_config = {k: v for k, v in config.items() if k not in _SELECTION}
        runfolder.write_json(run_dir / "config.json", worker_config | {"n_documents": len(docs)})


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
