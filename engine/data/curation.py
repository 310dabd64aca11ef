"""Cleaning and quality flags applied to the store: clean every document with
engine/data/clean.py's rules (a new numbered version for each one that changes; the raw text is
kept forever), preview a cleaning, recompute quality flags (engine/data/quality.py) and count
tokens with a model's tokenizer.

Run: python -m engine clean [--remove-citations]
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from engine.audit import record
from engine.auth import CONSOLE, check
from engine.data.clean import CleanSettings, clean_text, repeated_lines
from engine.data.quality import quality_flags
from store import documents as docs_store
from store import examples as examples_store
from store import overview as overview_store
from store import transaction


@dataclass
class CleanReport:
    n_documents: int
    n_changed: int
    n_repeated_lines: int
    seconds: float


def clean_documents(
    con, settings: CleanSettings = CleanSettings(), progress=None, user: dict | None = CONSOLE
) -> CleanReport:
    """Clean every document from its raw text (never from a previous cleaning), record a new
    version where the text changed, then recompute quality flags. Admins only."""
    check(user, "clean")
    started = time.perf_counter()
    total = docs_store.count_documents(con)
    repeats = _corpus_repeats(con)
    n_changed = done = 0
    with transaction(con):
        for batch in docs_store.iter_texts(con, "raw_text"):
            cleaned = pd.DataFrame(
                {
                    "id": batch["id"],
                    "text": [clean_text(t, settings, repeats) for t in batch["text"]],
                }
            )
            n_changed += docs_store.save_clean_texts(con, cleaned, settings.key())
            done += len(batch)
            if progress:
                progress(done, total)
        refresh_flags(con)
        overview_store.record_cleaning(con)  # the Home page's "imported since the last cleaning"
        record(
            con,
            user,
            "clean",
            "all documents",
            settings=settings.key(),
            documents=total,
            changed=n_changed,
            repeated_lines=len(repeats),
        )
    return CleanReport(total, n_changed, len(repeats), time.perf_counter() - started)


def _corpus_repeats(con) -> frozenset[str]:
    texts = (t for batch in docs_store.iter_texts(con, "raw_text") for t in batch["text"])
    return repeated_lines(texts)


@dataclass
class CleanPreview:
    documents: list[dict]  # the first `limit` that would change: id, before (stored), after
    n_changed: int  # how many documents Apply would change (as clean_documents counts them)
    n_documents: int


def preview_cleaning(con, settings: CleanSettings, limit: int = 5) -> CleanPreview:
    """What cleaning with `settings` would do, changing nothing: every document whose stored
    cleaned text would change is counted (as Apply counts them), the first `limit` are shown."""
    repeats = _corpus_repeats(con)
    out, n_changed, n = [], 0, 0
    raw, stored = docs_store.iter_texts(con, "raw_text"), docs_store.iter_texts(con, "clean_text")
    for batch, current in zip(raw, stored):  # the same ids in the same order
        for doc_id, text, before in zip(batch["id"], batch["text"], current["text"]):
            n += 1
            after = clean_text(text, settings, repeats)
            if after != before:
                n_changed += 1
                if len(out) < limit:
                    out.append({"id": doc_id, "before": before, "after": after})
    return CleanPreview(out, n_changed, n)


def refresh_flags(con, context_window: int | None = None, since_id: int = 0):
    """Recompute quality flags from the current cleaned text (of examples from `since_id` on)."""
    for batch in examples_store.examples_for_flags(con, since_id=since_id):
        flags = [
            quality_flags(
                d,
                None if pd.isna(s) else s,
                None if pd.isna(n) else int(n),
                None if pd.isna(n) else context_window,
            )
            for d, s, n in zip(batch["document"], batch["summary"], batch["n_tokens"])
        ]
        examples_store.set_flags(con, pd.DataFrame({"id": batch["id"], "flags": flags}))


def count_tokens(con, model_dir: str | Path | None = None, progress=None, user=CONSOLE) -> int:
    """Count each document's tokens in the chosen model's tokenizer (the embedded default's
    when None: converted on first use) and flag those over its context window. Returns the
    context window used."""
    from engine.models.embedded import context_window, default_model_dir, load_tokenizer

    check(user, "clean")
    model_dir = model_dir or default_model_dir(progress=lambda msg: None)
    tokenizer = load_tokenizer(str(model_dir))
    window = context_window(model_dir)
    total, done = docs_store.count_documents(con), 0
    with transaction(con):
        for batch in docs_store.iter_texts(con, "clean_text"):
            ids = tokenizer(list(batch["text"]), add_special_tokens=False)["input_ids"]
            counts = pd.DataFrame({"id": batch["id"], "n_tokens": [len(i) for i in ids]})
            docs_store.set_token_counts(con, counts)
            done += len(batch)
            if progress:
                progress(done, total)
        refresh_flags(con, window)
    return window
