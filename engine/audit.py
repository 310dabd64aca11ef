"""The audit log of admin actions: who did what, when, to what, with counts before and after.

The engine functions that change data in bulk, train or ship (engine/data/editing.py, duplicates.py,
split.py, curation.py, export.py, training.py, sweep.py, evaluation.py, preference.py) and the
account management in engine/auth.py call `record` with the acting user, inside the action's
transaction where it has one, so an action that fails leaves no entry. The Audit page (admins)
reads it with `entries`.

    from engine.audit import entries
    print(entries(con, actions=("bulk_status",)).head())
"""

from __future__ import annotations

import json

import pandas as pd

from store import audit as audit_store

# action → what it means, for the Audit page's filter and readers of the table.
ACTIONS = {
    "import": "imported a file, folder or dataset",
    "clean": "cleaned every document",
    "dedupe": "ran duplicate detection",
    "resolve_cluster": "kept one example of a duplicate cluster",
    "resolve_all": "resolved every duplicate cluster by a policy",
    "split": "split the examples (reset: re-split everything)",
    "export": "froze and exported a dataset version",
    "bulk_status": "set the status of many examples",
    "bulk_tag": "tagged many examples",
    "undo": "undid a bulk action",
    "train": "queued a training run",
    "sweep": "started a hyperparameter sweep",
    "cancel_sweep": "cancelled a sweep",
    "use_best": "made a sweep's best settings the default",
    "evaluate": "started an evaluation",
    "open_pair": "opened a blind A/B review",
    "close_pair": "closed a blind A/B review",
    "promote": "promoted a model to production",
    "labelling_order": "set the labelling queues' order (most useful first, or plain)",
    "feedback_sampling": "set the share of opted-in API summaries queued for review",
    "serve_start": "started the API server",
    "serve_stop": "stopped the API server",
    "api_key_create": "created an API key",
    "api_key_revoke": "revoked an API key",
    "export_model": "exported a model (merged weights and a model card)",
    "user_add": "added an account",
    "user_disable": "disabled an account",
    "user_enable": "enabled an account",
    "user_delete": "deleted an account",
    "user_password": "reset an account's password",
    "user_logout": "logged an account out everywhere",
    "cancel_run": "cancelled a background job (drafting, training, evaluation)",
    "resume_run": "resumed a cancelled or failed background job",
}


def record(con, user: dict | str, action: str, target=None, **details) -> int:
    """Add an entry: `user` is the acting user (a dict with its name, or a name), `target`
    what the action worked on, `details` JSON-able settings and counts (before=…, after=…).
    Returns the entry's id."""
    if action not in ACTIONS:
        raise ValueError(f"Unknown audit action {action!r}: add it to engine.audit.ACTIONS.")
    name = user.get("name") if isinstance(user, dict) else user
    if not name:
        raise ValueError("An audit entry needs the name of who acted.")
    return audit_store.add_entry(
        con, name, action, None if target is None else str(target), details
    )


def entries(
    con,
    usernames: tuple[str, ...] = (),
    actions: tuple[str, ...] = (),
    search: str | None = None,
    since=None,
    until=None,
    limit: int = 1000,
) -> pd.DataFrame:
    """Entries newest first: id, logged_at, username, action, target, details (a dict)."""
    df = audit_store.list_entries(con, usernames, actions, search, since, until, limit)
    df["details"] = [json.loads(d) if isinstance(d, str) else {} for d in df["details"]]
    return df


def filter_values(con) -> tuple[list[str], list[str]]:
    """(user names, actions) that occur in the log."""
    return audit_store.distinct(con, "username"), audit_store.distinct(con, "action")
