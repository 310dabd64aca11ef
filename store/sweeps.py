"""Hyperparameter sweeps as the store keeps them; their trials are rows of `runs` (kind train)
whose config JSON carries the sweep id."""

from __future__ import annotations

import json

import pandas as pd


def add_sweep(
    con,
    sweep_id: str,
    base_model_id: str,
    dataset_id: int,
    base_config: dict,
    space: dict,
    user: str | None = None,
):
    con.execute(
        "INSERT INTO sweeps (id, state, base_model_id, dataset_id, base_config, space, created_by)"
        " VALUES (?, 'running', ?, ?, ?, ?, ?)",
        [sweep_id, base_model_id, dataset_id, json.dumps(base_config), json.dumps(space), user],
    )


def get_sweep(con, sweep_id: str) -> dict | None:
    df = con.execute("SELECT * FROM sweeps WHERE id = ?", [sweep_id]).fetchdf()
    return None if df.empty else df.iloc[0].to_dict()


def list_sweeps(con, states: tuple[str, ...] = ()) -> pd.DataFrame:
    sql, params = "SELECT * FROM sweeps", []
    if states:
        sql += " WHERE state IN (SELECT unnest(?))"
        params.append(list(states))
    return con.execute(sql + " ORDER BY created_at DESC, id DESC", params).fetchdf()


def set_sweep_state(con, sweep_id: str, state: str):
    con.execute("UPDATE sweeps SET state = ? WHERE id = ?", [state, sweep_id])


def sweep_trials(con, sweep_id: str) -> pd.DataFrame:
    """The sweep's training runs, oldest first."""
    return con.execute(
        "SELECT * FROM runs WHERE kind = 'train' AND json_extract_string(config, '$.sweep_id') = ?"
        " ORDER BY created_at, id",
        [sweep_id],
    ).fetchdf()
