"""Importing into the store: open a source (engine/data/opening.py), stream its records, and store
new documents and examples in one transaction. Documents are keyed by a hash of their raw text and
examples by document + summary (engine/data/keys.py), so the same file imported twice adds
nothing, nor does a pair already stored by a review or an edit; a bad file stores nothing.

Run: python -m engine import PATH [--skip-bad-rows]
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from engine.audit import record
from engine.auth import CONSOLE
from engine.data.curation import refresh_flags
from engine.data.keys import content_hash, document_key
from engine.data.opening import open_source
from engine.data.sources import ColumnMap, ImportProblem
from store import audit as audit_store
from store import documents as docs_store
from store import examples as examples_store
from store import transaction


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
    header: bool = True,
) -> ImportReport:
    """Import documents and summaries from a file, folder or Hugging Face dataset.

    Re-importing the same content adds nothing (documents are keyed by a hash of their text,
    examples by document + summary). With `check`, the new examples' quality flags are computed
    in the same transaction (a separate pass, timed on its own in bench/curation.py). Raises
    ImportProblem, storing nothing, on bad input. `user`: CONSOLE for the CLI (any path), else
    the web app's signed-in user, whom `engine.importers.check_import_path` confines.
    `header` False: a CSV/TSV file has no header row (its columns are col1…colN)."""
    started = time.perf_counter()
    source = source_name or Path(str(path)).name
    try:
        src = open_source(path, mapping, skip_bad_rows, user=user, header=header)
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
    ids = [document_key(t) for t in texts]
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
            "content_hash": [content_hash(i, s) for i, s in zip(ids, summaries)],
            "n_summary_words": pa.array([len(w) for w in summary_words], pa.int32()),
        }
    )
    return documents, examples
