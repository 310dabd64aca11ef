"""Editing examples without losing anyone's work: saves checked against the version they started
from (optimistic concurrency), every change kept in history and revertible, bulk actions run as
one batch that can be undone. Every change of a summary recomputes the example's content hash
(engine/data/keys.py), so a later import of the edited text is recognised; bulk actions change
status and tags only, never a summary, so their hashes stay.

The Curate and Review pages call these. Each runs in one transaction; a lock serialises them in
the app's process (the only one that writes the store), so two saves that started from the same
version cannot both pass the check. Each takes the acting user (a dict with name and role, as
engine.auth signs in): anyone signed in may save or revert one example's change; bulk actions
and their undo are for admins (`engine.auth.check`) and go into the audit log.
"""

from __future__ import annotations

import threading

from engine.audit import record
from engine.auth import check
from engine.data.keys import content_hash
from engine.data.sources import edit_problem
from engine.errors import TuneloopError
from store import audit as audit_store
from store import examples as examples_store
from store import history as history_store
from store import transaction

_lock = threading.Lock()


class StaleEdit(TuneloopError):
    """The example changed after the editor opened it; nothing was saved. `current` is the
    stored state (summary, status, tags, version, updated_by, updated_at)."""

    def __init__(self, example_id: int, base_version: int, current: dict):
        self.example_id, self.base_version, self.current = example_id, base_version, current
        super().__init__(
            f"Example {example_id} was changed by {current['updated_by'] or 'someone'} while you "
            f"were editing it (it is now at version {current['version']}, you started from "
            f"version {base_version}), so your edit was not saved. Compare the two versions, "
            "then reload the latest or keep yours and save again."
        )


def save_example(
    con,
    example_id: int,
    *,
    summary: str | None,
    status: str,
    tags: list[str],
    base_version: int,
    user: dict | None,
) -> int:
    """Save an editor's summary, status and tags over the version it started from. Raises
    StaleEdit, changing nothing, when the example has moved on, unless it already holds exactly
    what is being saved (a second click of Save): that is a success. Returns the new version
    (the same one when nothing changed). An empty summary means "no reference yet". A summary
    or tags over the limits (sources.edit_problem) raise ValueError, changing nothing."""
    check(user, "edit")
    summary = (summary or "").strip() or None
    tags = sorted({t.strip() for t in tags if t.strip()})
    if problem := edit_problem(summary, tags):
        raise ValueError(f"Not saved: {problem}")
    changes = {"summary": summary, "status": status, "tags": tags}
    with _lock, transaction(con):
        current = examples_store.get_state(con, example_id)
        if current is None:
            raise ValueError(f"There is no example {example_id}.")
        stored = {
            "summary": current["summary"],
            "status": current["status"],
            "tags": sorted(current["tags"] or []),
        }
        if stored == changes:  # nothing to change, whoever saved it
            return current["version"]
        if current["version"] != base_version:
            raise StaleEdit(example_id, base_version, current)
        version = examples_store.update_example(con, example_id, changes, user["name"])
        _rehash(con, [example_id])
        return version


def _rehash(con, example_ids: list[int]):
    """Recompute the content hashes of examples whose summary may have changed. Refused (the
    caller's transaction rolls back) when an example would then hold what another example of
    its document holds: one document holds each summary once."""
    rows = examples_store.hash_inputs(con, example_ids)
    rows["new"] = [
        content_hash(d, s if isinstance(s, str) else None)
        for d, s in zip(rows["document_id"], rows["summary"])
    ]
    changed = rows[rows["new"] != rows["content_hash"]]
    if changed.empty:
        return
    held = examples_store.ids_by_hashes(con, changed["new"].tolist())
    for row in changed.itertuples():
        if (other := held.get(row.new, row.id)) != row.id:
            raise TuneloopError(
                f"Nothing was changed: example {other} of this document already has this "
                f"summary, and a document holds each summary once. Edit or reject example "
                f"{other} instead."
            )
    examples_store.set_content_hashes(con, changed.assign(content_hash=changed["new"]))


def revert_change(con, history_id: int, user: dict | None) -> str:
    """Put a field back to what it was before change `history_id`; the revert is a change of
    its own (recorded, version stepped). Reverting a creation rejects the example (it leaves
    training but keeps its history). Refused when the field has changed since. Returns what was
    done, in words."""
    check(user, "edit")
    name = user["name"]
    with _lock, transaction(con):
        change = history_store.get_change(con, history_id)
        if change is None:
            raise ValueError(f"There is no change {history_id}.")
        example_id, field = change["example_id"], change["field"]
        state = examples_store.get_state(con, example_id)
        if state is None:
            raise ValueError(f"Example {example_id} no longer exists.")
        note = f"revert of change {history_id}"
        if field == "created":
            if state["summary"] != change["after"] or state["status"] == "rejected":
                raise ValueError(
                    f"Example {example_id} has changed since it was created (it is "
                    f"{state['status']} now): revert its later changes first."
                )
            examples_store.update_example(con, example_id, {"status": "rejected"}, name, note)
            return f"Example {example_id} is rejected: it will not be trained on."
        if history_store.current_value(con, example_id, field) != change["after"]:
            raise ValueError(
                f"The {field} of example {example_id} has changed since change {history_id}: "
                "revert the later changes first (newest first), or edit it by hand."
            )
        examples_store.restore_changes(con, "id", history_id, name, note=note)
        _rehash(con, [example_id])
        return f"The {field} of example {example_id} is back to what it was before."


def bulk_set_status(con, example_ids: list[int], status: str, user: dict | None) -> tuple[int, int]:
    """Set the status of many examples as one bulk action (admins). Returns (batch id, how many
    changed)."""
    check(user, "bulk_edit")
    with _lock, transaction(con):
        before = audit_store.status_counts(con, example_ids)
        batch = history_store.start_batch(
            con, f"Set status {status} on {len(example_ids):,} examples", user["name"]
        )
        n = examples_store.set_status(con, example_ids, status, user["name"], batch)
        after = audit_store.status_counts(con, example_ids)
        record(
            con,
            user,
            "bulk_status",
            f"batch {batch}",
            status=status,
            examples=len(example_ids),
            changed=n,
            before=before,
            after=after,
        )
        return batch, n


def bulk_add_tag(con, example_ids: list[int], tag: str, user: dict | None) -> tuple[int, int]:
    """Tag many examples as one bulk action (admins). Returns (batch id, how many were
    tagged)."""
    check(user, "bulk_edit")
    tag = tag.strip()
    if not tag:
        raise ValueError("The tag is empty: type a tag to add.")
    if problem := edit_problem(None, [tag]):
        raise ValueError(f"Nothing was tagged: {problem}")
    with _lock, transaction(con):
        batch = history_store.start_batch(
            con, f"Tag {len(example_ids):,} examples with {tag!r}", user["name"]
        )
        n = examples_store.add_tag(con, example_ids, tag, user["name"], batch)
        record(
            con,
            user,
            "bulk_tag",
            f"batch {batch}",
            tag=tag,
            examples=len(example_ids),
            before={"tagged": len(example_ids) - n},
            after={"tagged": len(example_ids)},
        )
        return batch, n


def undo_batch(con, batch_id: int, user: dict | None) -> tuple[int, int]:
    """Undo a bulk action: each example it changed gets its previous value back, unless it has
    changed since (that later change is kept). The undo is a bulk action of its own. Returns
    (how many were restored, how many were left alone). Admins only."""
    check(user, "bulk_edit")
    with _lock, transaction(con):
        batch = history_store.get_batch(con, batch_id)
        if batch is None:
            raise ValueError(f"There is no bulk action {batch_id}.")
        if batch["undone_by"] is not None:
            raise ValueError(
                f"Bulk action {batch_id} was already undone (by bulk action {batch['undone_by']})."
            )
        name = user["name"]
        before = audit_store.status_counts(con)
        undo = history_store.start_batch(con, f"Undo: {batch['action']}", name, undo_of=batch_id)
        restored = examples_store.restore_changes(
            con, "batch_id", batch_id, name, undo, note=f"undo of bulk action {batch_id}"
        )
        record(
            con,
            user,
            "undo",
            f"batch {batch_id}",
            undo_batch=undo,
            undone=batch["action"],
            restored=restored,
            left_alone=batch["n"] - restored,
            before=before,
            after=audit_store.status_counts(con),
        )
        return restored, batch["n"] - restored
