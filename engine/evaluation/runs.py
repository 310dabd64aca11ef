"""Evaluation runs from the app's side: write the test split of a frozen dataset version into a
run folder and queue it; the worker (engine/evaluation/worker.py, `python -m engine eval-worker`)
generates and scores without touching the database, and the background poller
(engine/scheduler.py) stores its per-document scores with `ingest_evaluation`. Greedy by default,
with the current prompt template.

Run: python -m engine eval [--model ID] [--dataset N]
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from engine.audit import record
from engine.auth import CONSOLE, check
from engine.evaluation import worker
from engine.jobs import runfolder, runqueue
from engine.labelling.worker import DraftConfig
from engine.models.generation import GenerationSettings
from engine.models.registry import current_prompt, resolve
from store import evals as evals_store
from store import splits as splits_store
from store import transaction

# Evaluation generation: greedy and long enough for a paragraph-long summary.
EVAL_SETTINGS = GenerationSettings(max_new_tokens=160)


def test_dataset(con, dataset_id: int | None = None) -> int:
    """The dataset version to evaluate on: the given one, else the newest with a test split,
    else a new one frozen from the current splits."""
    if dataset_id is None:
        versions = splits_store.list_datasets(con)
        with_test = versions[versions["n_test"] > 0]
        if not with_test.empty:
            return int(with_test["id"].iloc[0])
        with transaction(con):
            dataset_id = splits_store.freeze_dataset(con, "evaluation")
    counts = splits_store.dataset_counts(con, dataset_id)
    if counts is None:
        raise ValueError(f"There is no dataset version {dataset_id}.")
    if not counts[2]:
        raise ValueError(
            f"Dataset v{dataset_id} has no test examples: split the accepted examples "
            "(Data page) so some are held out for testing."
        )
    return int(dataset_id)


def start_evaluation(
    con,
    model_id: str,
    dataset_id: int | None = None,
    settings: GenerationSettings = EVAL_SETTINGS,
    limit: int | None = None,
    semantic: bool = True,
    user: dict | None = CONSOLE,
) -> str:
    """Write the run folder (the test split only) and start the worker; returns the run id."""
    check(user, "evaluate")
    ref = resolve(con, model_id)
    dataset_id = test_dataset(con, dataset_id)
    rows = splits_store.dataset_rows(con, dataset_id)
    test = rows[rows["split"] == "test"]
    test = test if limit is None else test.head(limit)
    version, instruction = current_prompt(con)
    config = DraftConfig(
        model=ref.path,
        adapter=ref.adapter,
        model_id=model_id,
        instruction=instruction,
        prompt_version=version,
        generation=settings,
    )
    run_config = config.to_dict() | {"dataset_id": dataset_id, "semantic": semantic}
    documents = [
        {"document_id": str(r.example_id), "text": r.document, "reference": r.summary}
        for r in test.itertuples()
    ]
    args = ["eval-worker", "{run_dir}"] + ([] if semantic else ["--no-semantic"])
    with runqueue.preparing():
        with transaction(con):
            run_id, run_dir = runqueue.new_run(con, "eval", run_config, user["name"], args)
            evals_store.add_evaluation(con, run_id, model_id, dataset_id, version, asdict(settings))
            record(
                con,
                user,
                "evaluate",
                run_id,
                model=model_id,
                dataset=dataset_id,
                documents=len(documents),
                settings=asdict(settings),
            )
        worker.write_eval_run(run_dir, config, documents)
        runqueue.pump(con)
    return run_id


def ingest_evaluation(con, run: dict):
    """Store a finished evaluation's per-document scores and aggregates (safe to repeat)."""
    run_dir = Path(run["run_dir"])
    if runfolder.read_json(run_dir / "status.json", {}).get("state") != "succeeded":
        return
    rows = worker.read_scores(run_dir)
    if not rows:
        return
    frame = pd.DataFrame(rows)
    frame["example_id"] = frame["document_id"].astype(int)
    frame["unsupported"] = frame["unsupported"].map(json.dumps)
    evals_store.add_results(con, run["id"], frame)
    evals_store.set_aggregates(con, run["id"], runfolder.read_json(run_dir / "summary.json", {}))


def latest_evaluation(con, model_id: str, dataset_id: int | None = None) -> str | None:
    """The newest succeeded evaluation of a model (on a dataset version, if given)."""
    done = evals_store.list_evaluations(con, dataset_id)
    done = done[(done["model_id"] == model_id) & (done["state"] == "succeeded")]
    return None if done.empty else str(done["run_id"].iloc[0])


def ready_pair(con, dataset_id: int | None, model_a: str, model_b: str) -> tuple[str, str] | None:
    """Both models' newest finished evaluations on the dataset version, or None."""
    if dataset_id is None:
        return None
    pair = (
        latest_evaluation(con, model_a, dataset_id),
        latest_evaluation(con, model_b, dataset_id),
    )
    return None if None in pair else pair
