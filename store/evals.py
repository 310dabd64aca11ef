"""Evaluations: a model's summaries of a frozen test split, scored per document, and the
production model's promotions."""

from __future__ import annotations

import json

import pandas as pd

SCORE_COLUMNS = (
    "rouge1",
    "rouge2",
    "rougeL",
    "rougeLsum",
    "similarity",
    "summary_words",
    "reference_words",
    "compression",
    "novel_bigrams",
    "unsupported_facts",
    "unsupported_numbers",
    "cut_off",
)


def add_evaluation(
    con, run_id: str, model_id: str, dataset_id: int, prompt_version: int, generation: dict
):
    con.execute(
        "INSERT INTO evaluations (run_id, model_id, dataset_id, prompt_version, generation) "
        "VALUES (?, ?, ?, ?, ?)",
        [run_id, model_id, dataset_id, prompt_version, json.dumps(generation)],
    )


def set_aggregates(con, run_id: str, aggregates: dict):
    con.execute(
        "UPDATE evaluations SET aggregates = ? WHERE run_id = ?", [json.dumps(aggregates), run_id]
    )


def add_results(con, run_id: str, rows: pd.DataFrame) -> int:
    """Store per-document rows (example_id, summary, the score columns, unsupported as a JSON
    list), replacing any earlier ingest of the same run."""
    frame = rows.assign(run_id=run_id)[
        ["run_id", "example_id", "summary", *SCORE_COLUMNS, "unsupported"]
    ]
    con.execute("DELETE FROM eval_results WHERE run_id = ?", [run_id])
    con.register("_results", frame)
    try:
        con.execute(
            f"INSERT INTO eval_results (run_id, example_id, summary, {', '.join(SCORE_COLUMNS)}, "
            f"unsupported) SELECT * FROM _results"
        )
    finally:
        con.unregister("_results")
    return len(frame)


def copy_evaluation(con, source_run: str, run_id: str, dataset_id: int):
    """Record `run_id` as an evaluation on `dataset_id` with the same model, prompt, settings,
    aggregates and per-document results as `source_run` (same test documents, checked by the
    caller)."""
    con.execute(
        """INSERT INTO evaluations (run_id, model_id, dataset_id, prompt_version, generation,
               aggregates)
           SELECT ?, model_id, ?, prompt_version, generation, aggregates FROM evaluations
           WHERE run_id = ?""",
        [run_id, dataset_id, source_run],
    )
    columns = ", ".join(("example_id", "summary", *SCORE_COLUMNS, "unsupported"))
    con.execute(
        f"INSERT INTO eval_results (run_id, {columns}) SELECT ?, {columns} FROM eval_results "
        "WHERE run_id = ?",
        [run_id, source_run],
    )


def get_evaluation(con, run_id: str) -> dict | None:
    df = con.execute(
        """SELECT e.*, r.state, r.reason, r.run_dir FROM evaluations e
           JOIN runs r ON r.id = e.run_id WHERE e.run_id = ?""",
        [run_id],
    ).fetchdf()
    return None if df.empty else df.iloc[0].to_dict()


def list_evaluations(con, dataset_id: int | None = None) -> pd.DataFrame:
    """Every evaluation, newest first, with its run's state and the documents scored."""
    return con.execute(
        """SELECT e.run_id, e.model_id, e.dataset_id, e.prompt_version, e.generation,
                  e.aggregates, r.state, r.reason, r.created_at,
                  (SELECT count(*) FROM eval_results x WHERE x.run_id = e.run_id) AS n_scored
           FROM evaluations e JOIN runs r ON r.id = e.run_id
           WHERE ? IS NULL OR e.dataset_id = ?
           ORDER BY r.created_at DESC, e.run_id DESC""",
        [dataset_id, dataset_id],
    ).fetchdf()


def results(con, run_id: str) -> pd.DataFrame:
    return con.execute(
        "SELECT * FROM eval_results WHERE run_id = ? ORDER BY example_id", [run_id]
    ).fetchdf()


def paired_results(con, run_a: str, run_b: str) -> pd.DataFrame:
    """The documents both evaluations scored: document, reference and title from run A's
    dataset, then each score as <name>_a and <name>_b."""
    pairs = ", ".join(
        f"a.{c} AS {c}_a, b.{c} AS {c}_b" for c in ("summary", "unsupported", *SCORE_COLUMNS)
    )
    return con.execute(
        f"""SELECT a.example_id, d.title, d.document, d.summary AS reference, {pairs}
            FROM eval_results a
            JOIN eval_results b ON b.example_id = a.example_id AND b.run_id = ?
            JOIN evaluations e ON e.run_id = a.run_id
            JOIN dataset_examples d ON d.dataset_id = e.dataset_id
                 AND d.example_id = a.example_id
            WHERE a.run_id = ? ORDER BY a.example_id""",
        [run_b, run_a],
    ).fetchdf()


def add_promotion(
    con,
    model_id: str,
    previous_model_id: str | None,
    run_id: str | None,
    previous_run_id: str | None,
    evidence: dict | None,
    override_reason: str | None,
    user: str | None,
):
    con.execute(
        """INSERT INTO promotions (model_id, previous_model_id, run_id, previous_run_id,
               evidence, override_reason, promoted_by) VALUES (?, ?, ?, ?, ?, ?, ?)""",
        [
            model_id,
            previous_model_id,
            run_id,
            previous_run_id,
            json.dumps(evidence) if evidence else None,
            override_reason,
            user,
        ],
    )


def list_promotions(con) -> pd.DataFrame:
    return con.execute("SELECT * FROM promotions ORDER BY id DESC").fetchdf()
