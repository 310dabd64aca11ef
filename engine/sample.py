"""The sample set shipped with the product: fictional personal-injury cases with summaries,
with planted duplicates and dirty headers for the curation tools to find (see samples/README.md).
Loaded on first start, when the store is empty."""

from __future__ import annotations

from pathlib import Path

from store import documents as docs_store

SAMPLE_FILE = Path(__file__).parent / "samples" / "personal_injury.jsonl"


def load_sample_if_empty(con) -> bool:
    """Import, clean and deduplicate the sample set into an empty store; True if it did."""
    from engine.curation import clean_documents, import_file
    from engine.duplicates import dedupe_documents

    if docs_store.count_documents(con):
        return False
    import_file(con, SAMPLE_FILE, source_name="sample: personal injury cases")
    clean_documents(con)
    dedupe_documents(con)
    return True
