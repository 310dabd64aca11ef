"""Registered models and the versioned prompt template."""

from __future__ import annotations

import pandas as pd


def register_model(
    con,
    model_id: str,
    kind: str,
    path: str,
    base_id: str | None = None,
    run_id: str | None = None,
    note: str | None = None,
):
    """Add a model, or update where it lives if the id is already registered."""
    con.execute(
        """INSERT INTO models (id, kind, path, base_id, run_id, note) VALUES (?, ?, ?, ?, ?, ?)
           ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, path = excluded.path,
               base_id = excluded.base_id, run_id = excluded.run_id, note = excluded.note""",
        [model_id, kind, path, base_id, run_id, note],
    )


def get_model(con, model_id: str) -> dict | None:
    df = con.execute("SELECT * FROM models WHERE id = ?", [model_id]).fetchdf()
    return None if df.empty else df.iloc[0].to_dict()


def list_models(con) -> pd.DataFrame:
    return con.execute("SELECT * FROM models ORDER BY created_at, id").fetchdf()


def add_prompt_version(con, instruction: str, user: str | None = None) -> int:
    return con.execute(
        """INSERT INTO prompt_versions (version, instruction, created_by)
           SELECT coalesce(max(version), 0) + 1, ?, ? FROM prompt_versions RETURNING version""",
        [instruction, user],
    ).fetchone()[0]


def current_prompt(con) -> tuple[int, str] | None:
    """(version, instruction) of the newest prompt template, or None before the first."""
    return con.execute(
        "SELECT version, instruction FROM prompt_versions ORDER BY version DESC LIMIT 1"
    ).fetchone()


def get_prompt(con, version: int) -> str | None:
    row = con.execute(
        "SELECT instruction FROM prompt_versions WHERE version = ?", [version]
    ).fetchone()
    return row[0] if row else None


def prompt_history(con) -> pd.DataFrame:
    return con.execute(
        "SELECT version, created_by, created_at, instruction FROM prompt_versions "
        "ORDER BY version DESC"
    ).fetchdf()
