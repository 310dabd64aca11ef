"""Evaluations from the app's side: a real run on the test split is ingested per document, two
evaluations compare on their common documents, and promotion refuses a model that does not beat
the production model unless a reason is recorded."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd
import pytest

from engine import scheduler
from engine.data.samples import load_sample_if_empty
from engine.evaluation import comparison as evaluation_comparison
from engine.evaluation import runs as evaluation_runs
from engine.jobs import runfolder
from engine.models.generation import GenerationSettings
from engine.models.registry import PRODUCTION, production_model, register_base
from store import evals as evals_store
from store import registry as reg_store
from store import runs as runs_store
from store import splits as splits_store

ADA = {"name": "ada", "role": "admin"}  # the signed-in admin the pages pass


def wait_for(con, run_id, seconds=400):
    """Tick the job queue as the app's background poller does, until the run has finished."""
    deadline = time.time() + seconds
    while runs_store.get_run(con, run_id)["state"] in ("queued", "running"):
        assert time.time() < deadline, "the run did not finish"
        scheduler.tick(con)
        time.sleep(0.5)
    run = runs_store.get_run(con, run_id)
    return runfolder.RunState(run["state"], run["reason"], None)


@pytest.mark.slow
def test_an_evaluation_scores_the_test_split_and_is_ingested(con, home, tiny_model, monkeypatch):
    monkeypatch.setenv("PYTHONPROFILEIMPORTTIME", "1")  # the worker logs every module it imports
    load_sample_if_empty(con)
    register_base(con, "tiny", str(tiny_model))
    settings = GenerationSettings(max_new_tokens=8)
    run_id = evaluation_runs.start_evaluation(con, "tiny", settings=settings, semantic=False)
    assert wait_for(con, run_id).state == "succeeded"

    ev = evals_store.get_evaluation(con, run_id)
    rows = splits_store.dataset_rows(con, int(ev["dataset_id"]))
    test_ids = set(rows.loc[rows["split"] == "test", "example_id"])
    results = evals_store.results(con, run_id)
    assert test_ids and set(results["example_id"]) == test_ids  # every test document, only them
    assert results["rouge2"].between(0, 1).all() and results["similarity"].isna().all()
    aggregates = json.loads(ev["aggregates"])
    assert aggregates["n_documents"] == len(test_ids)
    assert json.loads(ev["generation"])["max_new_tokens"] == 8
    log = (Path(ev["run_dir"]) / "worker.log").read_text()
    imported = {line.split("|")[-1].strip() for line in log.splitlines() if "import time" in line}
    assert "rouge_score" in imported and not {"duckdb", "store", "streamlit"} & imported

    # Greedy generation is deterministic: a second run ties, so it cannot be promoted on merit.
    again = evaluation_runs.start_evaluation(con, "tiny", settings=settings, semantic=False)
    assert wait_for(con, again).state == "succeeded"
    comparison = evaluation_comparison.compare_runs(con, run_id, again)
    assert len(comparison.pairs) == len(test_ids)
    rouge = comparison.table.set_index("key").loc["rougeL"]
    assert rouge["delta"] == 0 and pd.isna(rouge["clear_winner"])
    assert "similarity" not in set(comparison.table["key"])  # not scored, not shown
    splits_store.set_setting(con, PRODUCTION, "tiny")
    reg_store.register_model(con, "tiny-copy", "base", str(tiny_model))
    with pytest.raises(ValueError, match="Evaluate tiny-copy"):
        evaluation_comparison.promote(con, "tiny-copy")


def plant_evaluation(con, model_id, dataset_id, example_ids, scores, unsupported=None):
    """A succeeded evaluation of `model_id` with these ROUGE (and similarity) scores."""
    if reg_store.get_model(con, model_id) is None:
        reg_store.register_model(con, model_id, "base", f"/models/{model_id}")
    run_id = f"eval-{model_id}"
    runs_store.add_run(con, run_id, "eval", f"/runs/{run_id}", {})
    runs_store.set_state(con, run_id, "succeeded")
    evals_store.add_evaluation(con, run_id, model_id, dataset_id, 1, {})
    n = len(example_ids)
    frame = pd.DataFrame(
        {
            "example_id": example_ids,
            "summary": [f"{model_id} summary {i}" for i in range(n)],
            "unsupported": ["[]"] * n,
        }
        | {c: scores for c in ("rouge1", "rouge2", "rougeL", "rougeLsum", "similarity")}
        | {"summary_words": 20, "reference_words": 22, "compression": 5.0}
        | {"novel_bigrams": 0.2, "unsupported_facts": unsupported or [0] * n}
        | {"unsupported_numbers": unsupported or [0] * n, "cut_off": 0}
    )
    evals_store.add_results(con, run_id, frame)
    return run_id


def planted_store(con):
    """A dataset version with 6 test documents and three models' evaluations of them: `base`
    (production), `worse` (lower ROUGE) and `better` (higher)."""
    con.execute(
        "INSERT INTO dataset_versions (note, n_train, n_validation, n_test) VALUES ('t', 0, 0, 6)"
    )
    dataset_id = con.execute("SELECT max(id) FROM dataset_versions").fetchone()[0]
    for i in range(6):
        con.execute(
            "INSERT INTO dataset_examples VALUES (?, ?, 'test', ?, ?, ?)",
            [dataset_id, i, f"document {i}", f"reference {i}", f"title {i}"],
        )
    scores = pd.Series([0.30, 0.25, 0.41, 0.33, 0.28, 0.36])
    for model_id, shift in (("base", 0.0), ("worse", -0.1), ("better", 0.1)):
        plant_evaluation(con, model_id, dataset_id, range(6), scores + shift, [0, 1, 0, 0, 2, 0])
    splits_store.set_setting(con, PRODUCTION, "base")


def test_compare_reports_paired_differences_with_intervals(con):
    planted_store(con)
    comparison = evaluation_comparison.compare_runs(con, "eval-base", "eval-better")
    table = comparison.table.set_index("key")
    assert table.loc["rouge2", "delta"] == pytest.approx(0.1)
    assert table.loc["rouge2", "clear_winner"] == "B"
    assert table.loc["has_unsupported", "a_mean"] == pytest.approx(2 / 6)
    assert pd.isna(table.loc["has_unsupported", "clear_winner"])  # no difference: no winner
    assert comparison.pairs["delta_rougeL"].round(6).eq(0.1).all()
    again = evaluation_comparison.compare_runs(con, "eval-base", "eval-better")
    pd.testing.assert_frame_equal(comparison.table, again.table)  # seeded: reproducible
    assert comparison.warnings == []
    con.execute("""UPDATE evaluations SET generation = '{"max_new_tokens": 64}'
                   WHERE run_id = 'eval-better'""")
    (warning,) = evaluation_comparison.compare_runs(con, "eval-base", "eval-better").warnings
    assert "different generation settings" in warning


def test_promotion_refuses_a_worse_model_and_records_an_override(con):
    planted_store(con)
    with pytest.raises(ValueError, match="does not beat the production model base"):
        evaluation_comparison.promote(con, "worse", ADA)
    assert production_model(con) == "base"
    assert evals_store.list_promotions(con).empty

    evidence = evaluation_comparison.promote(con, "better", ADA)
    assert evidence["beats"] and evidence["difference"] == pytest.approx(0.1)
    assert production_model(con) == "better"
    evaluation_comparison.promote(
        con, "worse", ADA, override_reason="Shorter summaries, legal agreed"
    )
    promotions = evals_store.list_promotions(con)
    assert production_model(con) == "worse"
    assert promotions["override_reason"].iloc[0] == "Shorter summaries, legal agreed"
    assert promotions["previous_model_id"].tolist() == ["better", "base"]
    with pytest.raises(ValueError, match="already the production model"):
        evaluation_comparison.promote(con, "worse")


@pytest.mark.slow
def test_a_finished_training_run_evaluates_its_model_and_production_once(con, home, tiny_model):
    from engine import followups
    from engine.training import runs as training_runs
    from engine.training.config import TrainConfig

    load_sample_if_empty(con)
    register_base(con, "tiny", str(tiny_model))
    splits_store.set_setting(con, PRODUCTION, "tiny")
    config = TrainConfig(
        base_model=str(tiny_model),
        max_steps=2,
        batch_size=4,
        max_length=256,
        max_new_tokens=8,
        rouge_eval_samples=0,
        early_stopping_patience=0,
        eval_every_steps=2,
        eval_samples=4,
    )
    run_id, _ = training_runs.start_training(con, config, "tiny", followup=followups.followup_plan)
    state = wait_for(con, run_id)
    assert state.state == "succeeded", state.reason
    evaluations = evals_store.list_evaluations(con)
    assert sorted(evaluations["model_id"]) == sorted([run_id, "tiny"])
    dataset = json.loads(runs_store.get_run(con, run_id)["config"])["dataset_version"]
    assert set(evaluations["dataset_id"]) == {dataset}  # the test split it was trained beside
    assert followups.evaluate_if_done(con, run_id) == []  # not twice
    for eval_run in evaluations["run_id"]:
        assert wait_for(con, eval_run).state == "succeeded"
    assert evaluation_runs.ready_pair(con, dataset, "tiny", run_id) is not None  # Compare is ready


def test_a_retrain_cancelled_before_it_starts_leaves_no_dataset_version(
    con, home, tiny_model, monkeypatch
):
    from engine.jobs import runqueue
    from engine.training import runs as training_runs
    from engine.training.config import TrainConfig

    load_sample_if_empty(con)
    register_base(con, "tiny", str(tiny_model))
    monkeypatch.setattr(runqueue, "pump", lambda con: [])  # the queue is busy: it stays queued
    evaluated, _, _ = training_runs.freeze_for_training(con, "evaluated")
    test_ids = splits_store.dataset_rows(con, evaluated).query("split == 'test'")["example_id"]
    plant_evaluation(con, "tiny", evaluated, test_ids.tolist(), [0.3] * len(test_ids))
    config = TrainConfig(base_model=str(tiny_model), max_steps=1, eval_every_steps=1)
    run_id, _ = training_runs.start_training(con, config, "tiny")
    frozen = json.loads(runs_store.get_run(con, run_id)["config"])["dataset_version"]
    assert frozen in set(splits_store.list_datasets(con)["id"])
    runqueue.cancel_run(con, run_id)
    scheduler.tick(con)
    assert set(splits_store.list_datasets(con)["id"]) == {evaluated}  # the evaluated one stays
    assert splits_store.dataset_rows(con, frozen).empty
    assert evaluation_runs.default_dataset(con, "tiny", "tiny") == evaluated


def test_compare_opens_where_the_latest_finished_comparison_is(con):
    planted_store(con)
    dataset_id = int(splits_store.list_datasets(con)["id"].iloc[0])
    # A newer version nobody finished evaluating (a retrain froze it; an evaluation of B runs).
    newer = splits_store.freeze_dataset(con, "retrain")
    con.execute("UPDATE dataset_versions SET n_test = 6 WHERE id = ?", [newer])
    runs_store.add_run(con, "eval-running", "eval", "/runs/eval-running", {})
    evals_store.add_evaluation(con, "eval-running", "better", newer, 1, {})
    assert evaluation_runs.default_dataset(con, "base", "better") == dataset_id
    assert evaluation_runs.default_dataset(con, "base", "unknown") == dataset_id  # A's
    assert evaluation_runs.default_dataset(con, "x", "y") == newer  # nothing evaluated: newest


def test_the_compare_page_opens_on_the_evaluated_version(home):
    from engine.data.split import split_examples
    from engine.evaluation.runs import test_dataset
    from engine.models.registry import ensure_default_model
    from engine.paths import db_path
    from store import connect
    from tests.conftest import signed_in_app

    app = signed_in_app("ada", "admin")
    con = connect(db_path())
    base = ensure_default_model(con, progress=lambda m: None)
    evaluated = test_dataset(con)
    test_ids = splits_store.dataset_rows(con, evaluated).query("split == 'test'")["example_id"]
    scores = [0.2 + 0.05 * (i % 3) for i in range(len(test_ids))]
    plant_evaluation(con, base, evaluated, test_ids.tolist(), scores)
    reg_store.register_model(con, "tuned", "lora", "/runs/t/final", base, "train-t")
    plant_evaluation(con, "tuned", evaluated, test_ids.tolist(), [s + 0.1 for s in scores])
    split_examples(con)
    newer = splits_store.freeze_dataset(con, "a retrain nobody evaluated yet")
    assert newer > evaluated
    app.switch_page("pages/compare.py").run()
    assert not app.exception, app.exception
    assert app.selectbox(key="compare_dataset").value == evaluated
    assert app.selectbox(key="compare_b").value == "tuned"
    assert "ROUGE-L" in set(app.dataframe[0].value["metric"])  # the comparison is shown


def test_the_base_evaluation_of_the_same_test_split_is_reused_not_regenerated(con, tiny_model):
    from dataclasses import asdict, replace

    from engine.models.registry import current_prompt
    from store import examples as examples_store

    load_sample_if_empty(con)
    register_base(con, "tiny", str(tiny_model))
    v1 = splits_store.freeze_dataset(con, "evaluated")
    test_ids = splits_store.dataset_rows(con, v1).query("split == 'test'")["example_id"].tolist()
    source = plant_evaluation(con, "tiny", v1, test_ids, [0.3] * len(test_ids))
    settings = evaluation_runs.EVAL_SETTINGS
    con.execute(
        "UPDATE runs SET config = ? WHERE id = ?",
        [json.dumps({"model": str(tiny_model), "adapter": None}), source],
    )
    con.execute(
        "UPDATE evaluations SET generation = ?, prompt_version = ? WHERE run_id = ?",
        [json.dumps(asdict(settings)), current_prompt(con)[0], source],
    )
    v2 = splits_store.freeze_dataset(con, "a retrain: same test split")
    assert evaluation_runs.reusable_evaluation(con, "tiny", v2) == source
    other = replace(settings, max_new_tokens=settings.max_new_tokens + 1)
    assert evaluation_runs.reusable_evaluation(con, "tiny", v2, other) is None  # other settings

    reused = evaluation_runs.reuse_evaluation(con, "tiny", v2, user=ADA)
    assert runs_store.get_run(con, reused)["state"] == "succeeded"
    assert "Reused" in runs_store.get_run(con, reused)["reason"]
    copied = evals_store.results(con, reused)
    assert copied["example_id"].tolist() == sorted(test_ids)
    assert evaluation_runs.latest_evaluation(con, "tiny", v2) == reused

    examples_store.update_summary(con, test_ids[0], "A reference edited after the evaluation.")
    v3 = splits_store.freeze_dataset(con, "a changed reference")
    assert evaluation_runs.reusable_evaluation(con, "tiny", v3) is None  # not the same test
