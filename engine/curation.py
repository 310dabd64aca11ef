"""The curation loop over the store: import → clean → flag → dedupe.

Each function takes an open DuckDB connection (from `store.connect`) and does one job the Data
and Duplicates pages and the CLI can start. Every write happens in one transaction, so a bad
file or a crash leaves what was stored before untouched. They take the acting user (CONSOLE for
the CLI): anyone may import an upload, admins also by path; cleaning is for admins. Imports and
cleanings go into the audit log.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import xxhash

from engine.audit import record
from engine.auth import CONSOLE, check
from engine.clean import CleanSettings, clean_text, repeated_lines
from engine.importers import ColumnMap, ImportProblem, open_source
from engine.quality import quality_flags
from store import audit as audit_store
from store import documents as docs_store
from store import examples as examples_store
from store import overview as overview_store
from store import transaction

__all__ = ["ImportProblem", "import_file", "clean_documents", "preview_cleaning"]


def _hash(text: str) -> str:
    return xxhash.xxh3_128_hexdigest(text.encode("utf-8"))


@dataclass
class ImportReport:
    source: str
    n_read: int = 0
    n_new_documents: int = 0
    n_new_examples: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    def message(self) -> str:
        text = (
            f"Read {self.n_read:,} rows from {self.source}: {self.n_new_documents:,} new "
            f"documents, {self.n_new_examples:,} new examples "
            f"({self.n_read - self.n_new_examples:,} already stored)."
        )
        if self.skipped:
            text += f" Skipped {len(self.skipped):,} malformed rows (first: {self.skipped[0][0]}: "
            text += f"{self.skipped[0][1]})."
        return text


def import_file(
    con,
    path: str | Path,
    mapping: ColumnMap | None = None,
    skip_bad_rows: bool = False,
    status: str = "pending",
    source_name: str | None = None,
    progress=None,
    batch_size: int = 5000,
    check: bool = True,
    user: dict | None = CONSOLE,
) -> ImportReport:
    """Import documents and summaries from a file, folder or Hugging Face dataset.

    Re-importing the same content adds nothing (documents are keyed by a hash of their text,
    examples by document + summary). With `check`, the new examples' quality flags are computed
    in the same transaction (a separate pass, timed on its own in bench/curation.py). Raises
    ImportProblem, storing nothing, on bad input. `user`: CONSOLE for the CLI (any path), else
    the web app's signed-in user, whom `engine.importers.check_import_path` confines."""
    started = time.perf_counter()
    source = source_name or Path(str(path)).name
    try:
        src = open_source(path, mapping, skip_bad_rows, user=user)
        report = _store_records(con, src, source, status, progress, batch_size, check, user)
    except OSError as e:  # an unreadable file: permissions, a disk error
        raise ImportProblem(
            f"{source} could not be read ({e.strerror or type(e).__name__}). Check that the app "
            "may read it, and import again."
        ) from None
    report.seconds = time.perf_counter() - started
    return report


def _store_records(
    con, src, source: str, status, progress, batch_size, check, user
) -> ImportReport:
    """Store what `src` streams in one transaction: all of it, or nothing."""
    report = ImportReport(source=source)
    with transaction(con):
        before = audit_store.store_counts(con)
        first_new = examples_store.max_example_id(con) + 1
        import_id = docs_store.start_import(con, source, src.kind)
        for records, done in src.batches(batch_size):
            documents, examples = _frames(records, source, status, import_id)
            report.n_read += len(records)
            report.n_new_documents += docs_store.add_documents(con, documents)
            report.n_new_examples += examples_store.add_examples(con, examples)
            if progress:
                progress(done, src.total)
        if report.n_read == 0:
            raise ImportProblem(f"{source}: no rows to import.")
        if check:
            refresh_flags(con, since_id=first_new)
        report.skipped = list(src.skipped)
        docs_store.finish_import(
            con,
            import_id,
            report.n_read,
            report.n_new_documents,
            report.n_new_examples,
            len(report.skipped),
        )
        record(
            con,
            user,
            "import",
            source,
            kind=src.kind,
            status=status,
            read=report.n_read,
            new_documents=report.n_new_documents,
            new_examples=report.n_new_examples,
            skipped=len(report.skipped),
            before=before,
            after=audit_store.store_counts(con),
        )
    return report


def _frames(records, source: str, status: str, import_id: int):
    """Arrow tables of the batch's documents and examples (Arrow goes to DuckDB without a copy;
    a pandas frame of strings costs a conversion)."""
    import pyarrow as pa

    n = len(records)
    texts = [r.document for r in records]
    summaries = [r.summary for r in records]
    ids = [_hash(t) for t in texts]
    documents = pa.table(
        {
            "id": ids,
            "raw_text": texts,
            "title": pa.array([r.title for r in records], pa.string()),
            "source": [source] * n,
            "ref": [r.ref for r in records],
            "n_words": pa.array([len(t.split()) for t in texts], pa.int32()),
            "import_id": pa.array([import_id] * n, pa.int64()),
        }
    )
    summary_words = [s.split() if s else [] for s in summaries]
    examples = pa.table(
        {
            "document_id": ids,
            "summary": pa.array(summaries, pa.string()),
            "origin": ["imported"] * n,
            "source": [source] * n,
            "status": [status] * n,
            "flags": pa.array([[] for _ in range(n)], pa.list_(pa.string())),  # see refresh_flags
            "content_hash": [_hash(i + "\x00" + " ".join(w)) for i, w in zip(ids, summary_words)],
            "n_summary_words": pa.array([len(w) for w in summary_words], pa.int32()),
        }
    )
    return documents, examples


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


def preview_cleaning(con, settings: CleanSettings, limit: int = 5) -> list[dict]:
    """Documents whose cleaned text would change, with before and after, changing nothing."""
    repeats = _corpus_repeats(con)
    out = []
    for batch in docs_store.iter_texts(con, "raw_text"):
        for doc_id, text in zip(batch["id"], batch["text"]):
            after = clean_text(text, settings, repeats)
            if after != text:
                out.append({"id": doc_id, "before": text, "after": after})
                if len(out) >= limit:
                    return out
    return out


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


def count_tokens(con, model_dir: str | Path, progress=None) -> int:
    """Count each document's tokens in the chosen model's tokenizer and flag those over its
    context window. Returns the context window used."""
    from engine.models import context_window, load_tokenizer

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
