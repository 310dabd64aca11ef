"""Blind A/B preferences: which of two evaluations' summaries of the same test document a
reviewer preferred, and the comparisons (pairs of evaluations) open for voting.

A pair is always stored as (run_a, run_b) with run_a < run_b; `left_run` records which one was
shown first and `winner_run` is NULL for a tie. The open pairs live in one app setting as a
JSON list, so opening and closing one needs no migration.
"""

from __future__ import annotations

import json

import pandas as pd

from store import splits

OPEN_PAIRS = "blind_open_pairs"


def get_open_pairs(con) -> list[tuple[str, str]]:
    return [tuple(p) for p in json.loads(splits.get_setting(con, OPEN_PAIRS, "[]"))]


def set_open_pairs(con, pairs: list[tuple[str, str]]):
    splits.set_setting(con, OPEN_PAIRS, json.dumps([list(p) for p in pairs]))


def shared_examples(con, run_a: str, run_b: str, reviewer: str | None = None) -> list[int]:
    """Documents both evaluations scored (and run A's dataset holds); with a reviewer, only
    those they have not voted on for this pair."""
    rows = con.execute(
        """SELECT a.example_id FROM eval_results a
           JOIN eval_results b ON b.example_id = a.example_id AND b.run_id = ?
           JOIN evaluations e ON e.run_id = a.run_id
           JOIN dataset_examples d ON d.dataset_id = e.dataset_id
                AND d.example_id = a.example_id
           WHERE a.run_id = ? AND (? IS NULL OR NOT EXISTS (
               SELECT 1 FROM preferences p WHERE p.run_a = ? AND p.run_b = ?
                 AND p.example_id = a.example_id AND p.reviewer = ?))
           ORDER BY a.example_id""",
        [run_b, run_a, reviewer, run_a, run_b, reviewer],
    ).fetchall()
    return [r[0] for r in rows]


def pair_texts(con, run_a: str, run_b: str, example_id: int) -> dict | None:
    """Title, document and both summaries of one document of a pair."""
    row = con.execute(
        """SELECT d.title, d.document, a.summary, b.summary FROM eval_results a
           JOIN eval_results b ON b.example_id = a.example_id AND b.run_id = ?
           JOIN evaluations e ON e.run_id = a.run_id
           JOIN dataset_examples d ON d.dataset_id = e.dataset_id
                AND d.example_id = a.example_id
           WHERE a.run_id = ? AND a.example_id = ?""",
        [run_b, run_a, example_id],
    ).fetchone()
    if row is None:
        return None
    return {"title": row[0], "document": row[1], "summary_a": row[2], "summary_b": row[3]}


def has_vote(con, run_a: str, run_b: str, example_id: int, reviewer: str) -> bool:
    return (
        con.execute(
            "SELECT count(*) FROM preferences WHERE run_a = ? AND run_b = ? AND example_id = ? "
            "AND reviewer = ?",
            [run_a, run_b, example_id, reviewer],
        ).fetchone()[0]
        > 0
    )


def add_preference(
    con,
    example_id: int,
    run_a: str,
    run_b: str,
    left_run: str,
    winner_run: str | None,
    reason: str | None,
    reviewer: str,
) -> int:
    return con.execute(
        """INSERT INTO preferences (example_id, run_a, run_b, left_run, winner_run, reason,
               reviewer) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id""",
        [example_id, run_a, run_b, left_run, winner_run, reason, reviewer],
    ).fetchone()[0]


def votes(con) -> pd.DataFrame:
    """Every vote with the model ids of its two evaluations, oldest first."""
    return con.execute(
        """SELECT p.id, p.example_id, p.run_a, p.run_b, ea.model_id AS model_a,
                  eb.model_id AS model_b, p.left_run, p.winner_run, p.reason, p.reviewer,
                  p.created_at
           FROM preferences p
           JOIN evaluations ea ON ea.run_id = p.run_a
           JOIN evaluations eb ON eb.run_id = p.run_b
           ORDER BY p.id"""
    ).fetchdf()


def count_votes(con, reviewer: str) -> int:
    return con.execute(
        "SELECT count(*) FROM preferences WHERE reviewer = ?", [reviewer]
    ).fetchone()[0]
