"""Where the loop stands: one entry per step (Import → Clean → Dedupe → Curate → Label/Review →
Split → Train → Compare → Promote) with live counts from the store, whether it is done, and the
next thing to do. One function per step; the Home page draws them and links each step's id to
its page.

    for step in loop_status(con):
        print(step["id"], "done" if step["done"] else "to do", step["counts"], step["next"])
"""

from __future__ import annotations

from engine.models.registry import production_model
from store import documents as docs_store
from store import duplicates as dup_store
from store import examples as examples_store
from store import labelling as labelling_store
from store import overview as overview_store
from store import registry as reg_store
from store import splits as splits_store


def _step(step_id, name, done, counts, to_do, when_done, action=None) -> dict:
    """A step of the checklist: id (which step: "import", "clean", "dedupe", "curate", "label"
    or, while drafts wait for review, "review", "split", "train", "compare", "promote"), step
    (its name), done, counts (one line), next (one line: the next action), action (what the
    step needs, engine.auth.can: "clean", "duplicates", "split", "train", "compare", "promote";
    None: any user may)."""
    return dict(
        id=step_id,
        step=name,
        done=bool(done),
        counts=counts,
        next=when_done if done else to_do,
        action=action,
    )


def _import_pending(con) -> tuple[str | None, int]:
    """(source, n) of the newest import's pending examples; the sample set's own pending ones
    are flagged on purpose, for Curate to find, and are no import of yours."""
    source, n = overview_store.latest_import_pending(con)
    return (None, 0) if source is None or source.startswith("sample:") else (source, n)


def pending_import(con) -> str | None:
    """What Home says first after an import whose examples wait for a decision, else None."""
    source, n = _import_pending(con)
    if not n:
        return None
    return (
        f"Your import {source} added {n:,} examples that are still pending: training leaves "
        "them out until they are accepted. Review or accept them on Curate."
    )


def import_step(con) -> dict:
    n_docs = docs_store.count_documents(con)
    return _step(
        "import",
        "Import",
        n_docs,
        f"{n_docs:,} documents",
        "Import documents: JSONL, CSV, Parquet, a folder of text or PDF files.",
        "Import your own documents whenever you are ready.",
    )


def clean_step(con) -> dict:
    cleaning = overview_store.cleaning_counts(con)
    return _step(
        "clean",
        "Clean",
        docs_store.count_documents(con) and not cleaning["not_cleaned"],
        f"{cleaning['cleaned']:,} documents changed by cleaning, "
        f"{cleaning['not_cleaned']:,} imported since the last cleaning",
        "Preview and apply cleaning (Data → Clean).",
        "Nothing new to clean.",
        "clean",
    )


def dedupe_step(con) -> dict:
    clusters, in_clusters = dup_store.count_clusters(con)
    unchecked = splits_store.count_unclustered(con)
    undecided = overview_store.count_undecided_clusters(con)
    return _step(
        "dedupe",
        "Dedupe",
        docs_store.count_documents(con) and not unchecked and not undecided,
        f"{clusters:,} duplicate clusters ({in_clusters:,} documents), {undecided:,} "
        f"undecided; {unchecked:,} documents not checked yet",
        f"Find duplicates: {unchecked:,} documents are new."
        if unchecked
        else f"Keep one example in each of the {undecided:,} undecided clusters.",
        "Every cluster keeps one example.",
        "duplicates",
    )


def curate_step(con) -> dict:
    statuses = examples_store.counts_by(con, "status")
    not_accepted = splits_store.accepted_counts(con)["not_accepted"]
    import_source, import_pending = _import_pending(con)
    return _step(
        "curate",
        "Curate",
        not not_accepted and sum(statuses["n"]),
        ", ".join(f"{n:,} {s}" for s, n in zip(statuses["status"], statuses["n"])) or "no examples",
        f"Your import {import_source} left {import_pending:,} examples pending: training "
        "uses accepted examples only, so review them on Curate (filter: pending) or accept "
        "them in bulk there."
        if import_pending
        else f"Accept, edit or reject {not_accepted:,} examples that have a summary.",
        "Every example with a summary is decided.",
    )


def label_step(con) -> dict:
    to_label = overview_store.count_documents_to_label(con)
    n_drafts, reviewed = labelling_store.count_drafts(con)
    waiting = n_drafts - reviewed
    return _step(
        "review" if waiting else "label",
        "Label/Review",
        not to_label and not waiting,
        f"{to_label:,} documents without a summary or draft, {waiting:,} drafts waiting for review",
        f"Review {waiting:,} drafts."
        if waiting
        else f"Draft summaries for {to_label:,} documents.",
        "Every document has a summary or a reviewed draft.",
    )


def split_step(con) -> dict:
    sides = splits_store.accepted_counts(con)
    return _step(
        "split",
        "Split",
        not sides["unsplit"] and sides["train"],
        f"{sides['train']:,} train, {sides['validation']:,} validation, "
        f"{sides['test']:,} test; {sides['unsplit']:,} accepted not split",
        f"Split {sides['unsplit']:,} accepted examples (Data → Split & export)."
        if sides["unsplit"]
        else "Accept examples with summaries, then split them.",
        "Every accepted example has its side.",
        "split",
    )


def train_step(con) -> dict:
    runs = overview_store.count_runs(con, "train")
    trained, busy = runs.get("succeeded", 0), runs.get("running", 0) + runs.get("queued", 0)
    return _step(
        "train",
        "Train",
        trained and not busy,
        f"{sum(runs.values()):,} training runs, {trained:,} succeeded, {busy:,} queued or running",
        "A run is under way: follow it on Train."
        if busy
        else "Start the first fine-tune: Retrain with the latest accepted data.",
        "Retrain when new accepted data arrives.",
        "train",
    )


def compare_step(con) -> dict:
    n_evals = sum(overview_store.count_runs(con, "eval").values())
    tuned_evals = overview_store.count_fine_tune_evaluations(con)
    return _step(
        "compare",
        "Compare",
        tuned_evals,
        f"{n_evals:,} evaluations, {tuned_evals:,} of fine-tuned models",
        "Evaluate a fine-tune on the test split (done for you after a training run).",
        "Compare the newest fine-tune with the production model.",
        "compare",
    )


def promote_step(con) -> dict:
    production = production_model(con)
    model = reg_store.get_model(con, production)
    return _step(
        "promote",
        "Promote",
        model is not None and model["kind"] != "base",
        f"Production model: {production}",
        "Promote a fine-tune that beats the base model on the test split.",
        "Promote the next fine-tune only when it beats this one.",
        "promote",
    )


STEPS = (
    import_step, clean_step, dedupe_step, curate_step, label_step,
    split_step, train_step, compare_step, promote_step,
)  # fmt: skip


def loop_status(con) -> list[dict]:
    """The checklist, in loop order: one entry per step (see _step)."""
    return [step(con) for step in STEPS]
