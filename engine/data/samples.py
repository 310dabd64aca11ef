"""The sample set shipped with the product: fictional personal-injury cases with summaries,
with planted duplicates and dirty headers for the curation tools to find (see sample_set/README.md).
Loaded on first start, when the store is empty."""

from __future__ import annotations

from pathlib import Path

from store import documents as docs_store

SAMPLE_FILE = Path(__file__).parent / "sample_set" / "personal_injury.jsonl"


def load_sample_if_empty(con) -> bool:
    """Import, clean, deduplicate and split the sample set into an empty store, accepting the
    examples that have a summary and no quality flag (duplicates are left for the Duplicates
    page to resolve; the split keeps each cluster on one side). True if it did."""
    from engine.auth import CONSOLE
    from engine.data.curation import clean_documents
    from engine.data.dedupe import dedupe_documents
    from engine.data.imports import import_file
    from engine.data.split import split_examples
    from store import examples as examples_store

    if docs_store.count_documents(con):
        return False
    import_file(con, SAMPLE_FILE, source_name="sample: personal injury cases")
    clean_documents(con)
    dedupe_documents(con)
    clean = examples_store.ExampleFilter(has_summary=True, flag="none")
    accepted = examples_store.ids_where(con, clean)
    examples_store.set_status(con, accepted, "accepted", CONSOLE["name"])  # the install itself
    split_examples(con)
    return True
