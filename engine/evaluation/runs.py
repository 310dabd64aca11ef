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
from engine.errors import TuneloopError
from engine.evaluation import worker
from engine.jobs import runfolder, runqueue
from engine.models.drafting import DraftConfig
from engine.models.generation import GenerationSettings
from engine.models.registry import current_prompt, resolve
from store import evals as evals_store
from store import runs as runs_store
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
        raise TuneloopError(f"There is no dataset version {dataset_id}.")
    if not counts[2]:
        raise TuneloopError(
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


def reusable_evaluation(
    con, model_id: str, dataset_id: int, settings: GenerationSettings = EVAL_SETTINGS
) -> str | None:
    """A succeeded evaluation that is already this one: the same model (id, weights and
    adapter), the same prompt, the same generation settings and the same test documents with
    the same references (`test_split_key`), on any dataset version. Greedy decoding makes it
    what a new run would write again, so regenerating it buys nothing."""
    ref = resolve(con, model_id)
    version, _ = current_prompt(con)
    key = splits_store.test_split_key(con, dataset_id)
    generation = json.dumps(asdict(settings))
    done = evals_store.list_evaluations(con)
    done = done[
        (done["model_id"] == model_id)
        & (done["state"] == "succeeded")
        & (done["prompt_version"] == version)
        & (done["n_scored"] > 0)
    ]
    for row in done.itertuples():
        if json.loads(row.generation) != json.loads(generation):
            continue
        config = json.loads(runs_store.get_run(con, row.run_id)["config"])
        if (config.get("model"), config.get("adapter")) != (ref.path, ref.adapter):
            continue
        if splits_store.test_split_key(con, int(row.dataset_id)) == key:
            return str(row.run_id)
    return None


def reuse_evaluation(
    con,
    model_id: str,
    dataset_id: int,
    settings: GenerationSettings = EVAL_SETTINGS,
    user: dict | None = CONSOLE,
) -> str | None:
    """Record the model's evaluation on `dataset_id` from an identical one made before (see
    `reusable_evaluation`) as a finished run that says where it came from; None when there is
    none to reuse. Audited like a started evaluation."""
    check(user, "evaluate")
    source = reusable_evaluation(con, model_id, dataset_id, settings)
    if source is None:
        return None
    old = runs_store.get_run(con, source)
    run_id = f"{source}-on-v{dataset_id}"
    reason = (
        f"Reused {source}: same model, prompt, settings and test documents, so greedy "
        "generation would write the same summaries again."
    )
    config = json.loads(old["config"]) | {"dataset_id": dataset_id, "reused_from": source}
    with transaction(con):
        runs_store.add_run(con, run_id, "eval", old["run_dir"], config, user["name"])
        runs_store.set_state(con, run_id, "succeeded", reason)
        evals_store.copy_evaluation(con, source, run_id, dataset_id)
        record(con, user, "evaluate", run_id, model=model_id, dataset=dataset_id, reused=source)
    return run_id


def measured_costs(con) -> dict | None:
    """What the newest evaluation worker on this install cost, for the ETA of the next ones:
    `fixed_s` (start, model load, scoring) and `token_step_s` (seconds per generated token of
    a batch); None before any evaluation has run here."""
    done = runs_store.list_runs(con, kind="eval", states=("succeeded",))
    for run in done.head(5).to_dict("records"):
        if json.loads(run["config"]).get("reused_from"):
            continue
        config = runfolder.read_json(Path(run["run_dir"]) / "config.json", {})
        if "generation" not in config:
            continue
        events, _ = runfolder.read_events(run["run_dir"])
        status = runfolder.read_json(Path(run["run_dir"]) / "status.json", {})
        times = {e.get("phase") or e["type"]: e["time"] for e in events}
        loaded, scoring, end = times.get("model_loaded"), times.get("scoring"), times.get("scored")
        started = status.get("started")
        batches = -(
            -int(config.get("n_documents") or 0) // max(1, config["generation"]["batch_size"])
        )
        if None in (loaded, scoring, end, started) or not batches:
            continue
        tokens = batches * config["generation"]["max_new_tokens"]
        fixed = (loaded - started) + (end - scoring)
        return {"fixed_s": round(fixed, 2), "token_step_s": round((scoring - loaded) / tokens, 4)}
    return None


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


def default_dataset(con, model_a: str, model_b: str) -> int | None:
    """Where Compare opens for two models: the newest dataset version on which both have a
    finished evaluation (the latest finished comparison), else the newest one on which B, then
    A, has any evaluation (one may still be running), else the newest version with a test
    split; None when there is none. Never a version frozen later that nobody evaluated."""
    done = evals_store.list_evaluations(con)
    finished = done[done["state"] == "succeeded"]
    both = set(finished.loc[finished["model_id"] == model_a, "dataset_id"]) & set(
        finished.loc[finished["model_id"] == model_b, "dataset_id"]
    )
    if both:
        return int(max(both))
    for model_id in (model_b, model_a):
        mine = done.loc[done["model_id"] == model_id, "dataset_id"]
        if not mine.empty:
            return int(mine.max())
    versions = splits_store.list_datasets(con)
    versions = versions[versions["n_test"] > 0]
    return None if versions.empty else int(versions["id"].iloc[0])


def ready_pair(con, dataset_id: int | None, model_a: str, model_b: str) -> tuple[str, str] | None:
    """Both models' newest finished evaluations on the dataset version, or None."""
    if dataset_id is None:
        return None
    pair = (
        latest_evaluation(con, model_a, dataset_id),
        latest_evaluation(con, model_b, dataset_id),
    )
    return None if None in pair else pair
