"""The evaluation worker: scores match the metric functions, aggregates are reproducible, a
paired comparison sees a better model, and a real run over a tiny model's summaries writes
per-document scores without the database."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from engine import metrics
from engine.evaluation import worker as eval_worker
from engine.models import drafting
from engine.models.generation import GenerationSettings
from tests.conftest import ROOT, write_jsonl

DOCUMENT = "On March 3, 2021 the city paid $12,000 to Dana Reyes for a fall on Elm Street."
REFERENCE = "The city paid Dana Reyes $12,000 for a fall on Elm Street on March 3, 2021."


def test_scores_follow_the_metrics_and_catch_an_invented_date():
    faithful = "The city paid Dana Reyes $12,000 after a fall on Elm Street."
    invented = "On June 9, 2019 the city paid Dana Reyes $50,000."
    rows = eval_worker.score([DOCUMENT] * 2, [REFERENCE] * 2, [faithful, invented])
    expected = metrics.rouge([faithful, invented], [REFERENCE] * 2)
    assert [r["rouge2"] for r in rows] == [round(float(v), 4) for v in expected["rouge2"]]
    assert rows[0]["unsupported_facts"] == 0 and rows[0]["has_unsupported"] == 0
    assert rows[1]["has_unsupported"] == 1 and "June 9, 2019" in " ".join(rows[1]["unsupported"])
    assert rows[1]["unsupported_numbers"] == 2  # the invented date and amount
    assert metrics.fact_counts(["USDA"])["has_unsupported_numbers"] == 0  # a name only
    assert rows[0]["similarity"] is None  # no embedder given
    summary = eval_worker.aggregate(rows)
    assert summary["n_documents"] == 2 and summary["has_unsupported"]["mean"] == 0.5
    assert eval_worker.aggregate(rows, seed=3) == eval_worker.aggregate(rows, seed=3)


def test_a_paired_comparison_sees_the_better_model():
    a = [{"rouge2": v} for v in (0.10, 0.12, 0.08, 0.11, 0.09, 0.10)]
    b = [{"rouge2": v + 0.1} for v in (0.10, 0.12, 0.08, 0.11, 0.09, 0.10)]
    result = eval_worker.compare(a, b, "rouge2")
    assert result["mean"] == pytest.approx(0.1) and result["low"] > 0 and result["p_value"] < 0.05
    with pytest.raises(ValueError, match="same documents"):
        eval_worker.compare(a, b[:3], "rouge2")


@pytest.mark.slow
def test_the_worker_summarizes_and_scores_a_test_set(tiny_model, tmp_path):
    run_dir = tmp_path / "eval"
    documents = [
        {"document_id": f"d{i}", "text": f"Bill {i} renames the post office on Main Street."}
        for i in range(3)
    ]
    config = drafting.DraftConfig(
        model=str(tiny_model), model_id="tiny", generation=GenerationSettings(max_new_tokens=8)
    )
    drafting.write_run(run_dir, config, documents)
    write_jsonl(
        run_dir / "references.jsonl",
        [
            {"document_id": d["document_id"], "reference": "A post office is renamed."}
            for d in documents
        ],
    )
    out = subprocess.run(
        [
            sys.executable,
            "-X",
            "importtime",
            "-m",
            "engine",
            "eval-worker",
            str(run_dir),
            "--no-semantic",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    imported = {
        line.split("|")[-1].strip()
        for line in out.stderr.splitlines()
        if line.startswith("import time")
    }
    assert "rouge_score" in imported and not {"duckdb", "store", "streamlit"} & imported
    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == "succeeded" and status["summary"]["n_documents"] == 3
    scores = [json.loads(line) for line in (run_dir / "scores.jsonl").read_text().splitlines()]
    assert [s["document_id"] for s in scores] == ["d0", "d1", "d2"]
    assert all(0 <= s["rouge1"] <= 1 and s["summary_words"] >= 0 for s in scores)


def test_missing_references_fail_with_a_clear_reason(tiny_model, tmp_path):
    run_dir = tmp_path / "eval"
    drafting.write_run(
        run_dir,
        drafting.DraftConfig(model=str(tiny_model)),
        [{"document_id": "d0", "text": "A bill."}],
    )
    assert eval_worker.main([str(run_dir)]) == 1
    reason = json.loads((run_dir / "status.json").read_text())["reason"]
    assert "references.jsonl is missing" in reason
