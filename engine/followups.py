"""Follow-ups: what one stage's finished work sets in motion in a later one. The stages never
start each other; the coordinator does, here, above them all (beside engine/scheduler.py, whose
poller calls it when a run finishes).

- After training, evaluate: `evaluate_if_done` evaluates a succeeded training run's model on the
  test split it was trained beside, and the production model too when it has no evaluation
  there (reusing an identical earlier one), so that Compare is ready. `followup_plan` says what
  that will run, for the training worker's ETA (followup.json): pass it to
  `engine.training.runs.start_training` (`followup=`).
- After a promotion, publish: `promote_and_publish` promotes a model
  (engine/evaluation/comparison.py `promote`) and hands it to a running API server
  (engine/serving/runs.py `publish_model`), which swaps to it within seconds.
"""

from __future__ import annotations

import json

from engine.auth import CONSOLE, on_behalf_of
from engine.evaluation.comparison import promote
from engine.evaluation.runs import (
    EVAL_SETTINGS,
    measured_costs,
    reusable_evaluation,
    reuse_evaluation,
    start_evaluation,
)
from engine.models.registry import production_model
from engine.serving.runs import publish_model
from store import evals as evals_store
from store import registry as reg_store
from store import runs as runs_store
from store import splits as splits_store


def followup_plan(con, dataset_id: int) -> dict:
    """What `evaluate_if_done` will run once training on `dataset_id` succeeds, for the worker's
    ETA until Compare is ready: the new model's evaluation, and the production model's unless
    an identical one can be reused; the test documents, the settings, and what an evaluation
    cost here last time."""
    counts = splits_store.dataset_counts(con, dataset_id)
    n_test = counts[2] if counts else 0
    production = production_model(con)
    reused = reg_store.get_model(con, production) is None or reusable_evaluation(
        con, production, dataset_id
    )
    return {
        "evaluations": (0 if not n_test else 1 + (not reused)),
        "documents": n_test,
        "batch_size": EVAL_SETTINGS.batch_size,
        "max_new_tokens": EVAL_SETTINGS.max_new_tokens,
        "measured": measured_costs(con),
    }


def evaluate_if_done(con, run_id: str) -> list[str]:
    """Once a training run (not a sweep trial) has registered its model, evaluate it on the
    test split of the dataset version it trained on, and the production model too if it has
    no evaluation there yet (reusing an identical earlier one when there is one), so that
    Compare is ready. Returns the evaluation runs started or reused."""
    run = runs_store.get_run(con, run_id)
    config = json.loads(run["config"])
    if run["state"] != "succeeded" or config.get("sweep_id"):
        return []
    counts = splits_store.dataset_counts(con, config.get("dataset_version") or 0)
    if not counts or not counts[2]:
        return []
    dataset_id = config["dataset_version"]
    done = evals_store.list_evaluations(con, dataset_id)
    started = {}
    for model_id in (run_id, production_model(con)):
        known = reg_store.get_model(con, model_id) is not None
        if known and not (done["model_id"] == model_id).any() and model_id not in started:
            by = on_behalf_of(run["created_by"])  # the run's starter, checked when it started
            # The production model's summaries of the same test documents, with the same
            # prompt and settings, are already known from an earlier version: reuse them.
            started[model_id] = reuse_evaluation(
                con, model_id, dataset_id, user=by
            ) or start_evaluation(con, model_id, dataset_id, user=by)
    return list(started.values())


def promote_and_publish(
    con,
    model_id: str,
    user: dict | None = CONSOLE,
    override_reason: str = "",
    dataset_id: int | None = None,
) -> dict | None:
    """Promote `model_id` (the rules and the evidence: engine/evaluation/comparison.py
    `promote`), then rewrite the serve folder's model.json so a running API server swaps to
    it within seconds. Returns the evidence."""
    evidence = promote(con, model_id, user, override_reason, dataset_id)
    publish_model(con)
    return evidence
