"""The drafting job: a model writes a summary draft for each document of a run folder.

    python -m engine draft-worker RUN_DIR

The run folder (config.json: a DraftConfig; documents.jsonl) is written by
engine/labelling/runs.py; the drafting itself (batched, resumable, cancellable, appending
drafts.jsonl) is engine/models/drafting.py, which the evaluation worker shares. Like every job,
it never opens the database: the app ingests drafts.jsonl.
"""

from __future__ import annotations

from engine.jobs.workers import run_job, worker_main
from engine.models.drafting import run_drafting

OUT_OF_MEMORY = "lower the batch size in the settings"


def main(argv: list[str]) -> int:
    return worker_main(
        argv,
        "python -m engine draft-worker",
        "Draft summaries for a run folder.",
        lambda args: run_job(
            args.run_dir, lambda: run_drafting(args.run_dir), "drafting", OUT_OF_MEMORY
        ),
    )
