"""What every import source shares: the records it yields, the column mapping, the limits and the
errors for people.

A `Table` is what a reader (engine/data/readers.py, hub.py, documents.py) returns: its columns,
their kinds and a function that streams `Record`s in batches. Columns are mapped to
document/summary/title by name (`resolve_mapping`), and every row is checked as it is read
(`to_record`).

Decisions:
- A summary that is a number (JSON 3, a CSV cell "3", an integer Parquet/HF column) is refused,
  never converted: it means the wrong column is mapped (a label, a score), not a summary.
- An empty or null summary is no summary (None); the document is kept.
- In a column mapping, a summary or title left None is auto-detected; "" means none.
- Refs are "file:line" for text files (1-based, as editors show), "file:row" for Parquet and
  "hf:name/split:row" for datasets (0-based row indexes, as pandas and datasets count them) and
  "folder/file.pdf" for documents read from files.
- Hostile input is a bad row, never a crash: one line, record or file over the document limit
  (TUNELOOP_MAX_DOCUMENT_BYTES, default 2 MB) is refused without being held in memory whole,
  JSON nested too deeply is refused, NUL characters are dropped from the text.
- Packed input is held to the limits of unpacked input: a .gz file may unpack to at most
  MAX_BYTES (a 382 KB gzip can hold gigabytes), and a Parquet file's metadata is checked before a
  column is read (`parquet_problem`: a 9.7 KB file can hold a 300 MB cell). No import takes more
  than MAX_ROWS rows.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import TuneloopError

MAX_BYTES = 512 * 1024 * 1024  # larger files (unpacked: .gz, Parquet) are refused: split them


# Rows one import may hold: ten times BillSum's training set, far more than a team reviews, and
# small enough that one import's transaction stays within memory.
MAX_ROWS = 200_000


MAX_DOCUMENT_BYTES = 2 * 1024 * 1024  # one line, record or text file; TUNELOOP_MAX_DOCUMENT_BYTES


# Tags on one example, and characters in one tag: enough to sort a set by hand, never a dump.
MAX_TAGS = 50
MAX_TAG_CHARS = 64


DOCUMENT_NAMES = (
    "document", "text", "article", "body", "content", "source", "input", "bill_text", "full_text",
)  # fmt: skip


SUMMARY_NAMES = (
    "summary", "abstract", "target", "highlights", "output", "reference", "label", "summ",
)  # fmt: skip


TITLE_NAMES = ("title", "name", "headline", "subject")


EXTENSIONS = {  # file name ending → kind; .gz files are unpacked while they are read
    ".jsonl": "jsonl", ".json": "jsonl", ".jsonl.gz": "jsonl", ".json.gz": "jsonl",
    ".csv": "csv", ".tsv": "csv", ".csv.gz": "csv", ".tsv.gz": "csv",
    ".parquet": "parquet", ".txt": "folder", ".md": "folder", ".pdf": "folder",
}  # fmt: skip


ROW_ADVICE = "Fix the row, or choose 'skip malformed rows' to import the others."


SPLIT_ADVICE = "Split it into smaller files (JSONL: split -l 100000 FILE part-) and import each."


LARGE_ADVICE = (
    "Shorten or split that document (or raise TUNELOOP_MAX_DOCUMENT_BYTES where the app runs), "
    "or choose 'skip malformed rows' to import the others."
)


NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")  # text that is only a number


class ImportProblem(TuneloopError):
    """Bad input, explained for people: what is wrong, where, and what to do."""


class BadRow(ImportProblem):
    """One bad row or file. Raised, or recorded in `Source.skipped` when skipping bad rows."""

    def __init__(self, ref: str, where: str, reason: str, advice: str = ROW_ADVICE):
        super().__init__(f"{where}: {reason}. {advice}")
        self.ref, self.reason = ref, reason


@dataclass
class Record:
    document: str
    summary: str | None  # None when the source has no summary
    title: str | None
    ref: str  # where it came from, e.g. "cases.jsonl:17", "folder/a.pdf", "hf:billsum/train:42"


@dataclass
class ColumnMap:
    document: str  # column holding the document text
    summary: str | None = None  # column holding the reference summary; None: detect, "": none
    title: str | None = None  # column holding a title; None: detect, "": none


@dataclass
class Table:
    """What a reader found when opening a source, and how to stream its rows."""

    columns: list[str]
    total: int | None  # bytes, rows or files, in the unit of the progress the rows carry
    rows: Callable[[ColumnMap], Iterator[tuple[str, str, dict | Record | BadRow, int]]]
    types: dict[str, str] | None = None  # column → "text", "number", …: from the schema, or
    # the first rows' values in JSONL and CSV; only "text" and "empty" may be document or summary
    ignored: list[tuple[str, str]] = field(default_factory=list)  # files a folder import skips


def max_document_bytes() -> int:
    """The most text one line, record or file may hold (TUNELOOP_MAX_DOCUMENT_BYTES)."""
    text = os.environ.get("TUNELOOP_MAX_DOCUMENT_BYTES", "").strip()
    if not text:
        return MAX_DOCUMENT_BYTES
    if not text.isdigit() or int(text) < 1:
        raise ImportProblem(
            f"TUNELOOP_MAX_DOCUMENT_BYTES must be a whole number of bytes, not '{text}'. Fix it "
            "where the app is started."
        )
    return int(text)


def edit_problem(summary: str | None, tags: list[str]) -> str | None:
    """Why an edit of one example cannot be stored, or None: a summary is held to the limit
    for one document of an import (`max_document_bytes`), tags to MAX_TAGS of MAX_TAG_CHARS."""
    limit = max_document_bytes()
    if summary is not None and len(summary) > limit:
        return (
            f"The summary is {len(summary):,} characters, {over_limit(limit)}: shorten it "
            "(a summary is shorter than its document)."
        )
    if len(tags) > MAX_TAGS:
        return f"{len(tags):,} tags are more than the {MAX_TAGS} one example may have: use fewer."
    if long := [t for t in tags if len(t) > MAX_TAG_CHARS]:
        return (
            f"The tag '{long[0][:40]}…' is {len(long[0]):,} characters, over the "
            f"{MAX_TAG_CHARS} a tag may have: shorten it."
        )
    return None


def over_limit(limit: int) -> str:
    """The end of a bad row's reason: "over the 2 MB limit for one document"."""
    unit, name = next((u, n) for u, n in ((2**20, "MB"), (1024, "KB"), (1, "bytes")) if limit >= u)
    return f"over the {round(limit / unit, 1):g} {name} limit for one document"


def size_problem(path: Path) -> str | None:
    """Why a file is too large to import ("is 600.0 MB, over the …"), or None."""
    size = path.stat().st_size
    if size <= MAX_BYTES:
        return None
    return f"is {size / 2**20:,.1f} MB, over the {MAX_BYTES / 2**20:,.0f} MB limit for one file"


def unpacked_problem(name: str, unpacked: int) -> ImportProblem:
    """The refusal of a packed file that unpacks to more than MAX_BYTES."""
    return ImportProblem(
        f"{name} unpacks to more than {MAX_BYTES / 2**20:,.0f} MB ({unpacked / 2**20:,.1f} MB "
        f"so far), over the limit for one file. {SPLIT_ADVICE}"
    )


def rows_problem(name: str) -> ImportProblem:
    return ImportProblem(
        f"{name} has more than {MAX_ROWS:,} rows, over the limit for one import. {SPLIT_ADVICE}"
    )


def parquet_problem(name: str, metadata, columns: list[str], limit: int) -> ImportProblem | None:
    """Why the Parquet file described by `metadata` (pyarrow FileMetaData) cannot be read for
    `columns` without unpacking too much, judged before a value is read: its rows over MAX_ROWS,
    the columns' unpacked bytes over MAX_BYTES, or a row group's column of more bytes than a row
    can take (then some value in it is over `limit`, the limit for one document). None if fine.
    The sizes are the writer's; the cells are checked again as they are read (`to_record`)."""
    if metadata.num_rows > MAX_ROWS:
        return rows_problem(name)
    # A value within the limit (characters) is at most 4 bytes a character in UTF-8, plus its
    # length prefix and levels: more per row than that means some value is over the limit.
    per_row, wanted, total = 4 * limit + 64, set(columns), 0
    for g in range(metadata.num_row_groups):
        group = metadata.row_group(g)
        for c in range(group.num_columns):
            chunk = group.column(c)
            column = chunk.path_in_schema.split(".")[0]
            if column not in wanted:
                continue
            total += chunk.total_uncompressed_size
            if chunk.total_uncompressed_size > max(group.num_rows, 1) * per_row:
                return ImportProblem(
                    f"{name}, column '{column}': row group {g} unpacks to "
                    f"{chunk.total_uncompressed_size / 2**20:,.1f} MB for {group.num_rows:,} "
                    f"rows, so a value in it is {over_limit(limit)}. Shorten or split that "
                    "document (or raise TUNELOOP_MAX_DOCUMENT_BYTES where the app runs), and "
                    "import again."
                )
    if total > MAX_BYTES:
        return unpacked_problem(name, total)
    return None


def headless_columns(n: int) -> list[str]:
    """The names of a CSV file's columns when its first line is data: col1…colN."""
    return [f"col{i}" for i in range(1, n + 1)]


def header_warning(columns: list[str], rows: list[list[str]]) -> str | None:
    """Why a CSV file's first line looks like data rather than column names, or None: none of
    its names is a known column name (DOCUMENT_NAMES, …), and one is as long as a document, i.e.
    a sentence (over 40 characters or 6 words), or at least half as long as the column's typical
    value in the first `rows` where those are long."""
    known = {*DOCUMENT_NAMES, *SUMMARY_NAMES, *TITLE_NAMES}
    if any(c.strip().lower() in known for c in columns):
        return None
    for i, name in enumerate(columns):
        lengths = sorted(len(r[i]) for r in rows if i < len(r) and r[i].strip())
        typical = lengths[len(lengths) // 2] if lengths else 0
        if len(name) > 40 or len(name.split()) > 6 or (typical >= 40 and len(name) >= typical / 2):
            shown = name if len(name) <= 60 else name[:59] + "…"
            return (
                f"The first line looks like data, not column names: its column {i + 1} is "
                f"'{shown}'. If the file has no header row, tick 'No header row' so that line is "
                "imported too, and choose the document and summary columns."
            )
    return None


def detect_columns(columns: list[str], types: dict[str, str] | None = None) -> ColumnMap:
    """Guess the document, summary and title columns by name: case-insensitive, an exact name
    first, then a column starting with a known name, then one containing it. Columns whose
    `types` say they hold numbers or true/false (a "label", a "score") are never the document
    or the summary."""
    return resolve_mapping(None, columns, types)


def resolve_mapping(
    mapping: ColumnMap | None, columns: list[str], types: dict[str, str] | None = None
) -> ColumnMap:
    """The mapping with each column checked against the source (case-insensitively), and the
    columns left as None auto-detected ("" means none)."""
    mapping = mapping or ColumnMap("")
    types = types or {}
    scalars = {c for c, kind in types.items() if kind in ("number", "true/false")}
    found = ", ".join(f"{c} ({types[c]})" if c in scalars else c for c in columns) or "none"

    def find(column: str | None, role: str, names: tuple, excluded: set) -> str | None:
        if column is None:
            return _detect(columns, names, excluded)
        if column in columns or not column:
            return column or None
        same = [c for c in columns if c.lower() == column.strip().lower()]
        if len(same) == 1:
            return same[0]
        raise ImportProblem(
            f"no column '{column}' for the {role} (columns found: {found}). Choose one of those "
            "in the column mapping."
        )

    document = find(mapping.document or None, "document", DOCUMENT_NAMES, scalars)
    if document is None:
        raise ImportProblem(
            f"no document column (columns found: {found}). Name the column holding the text "
            f"one of {', '.join(DOCUMENT_NAMES)}, or choose it in the column mapping."
        )
    summary = find(mapping.summary, "summary", SUMMARY_NAMES, scalars | {document})
    title = find(mapping.title, "title", TITLE_NAMES, {document, summary})
    return ColumnMap(document, summary, title)


def _detect(columns: list[str], names: tuple[str, ...], excluded: set) -> str | None:
    free = [(c, c.strip().lower()) for c in columns if c not in excluded]
    for matches in (str.__eq__, str.startswith, str.__contains__):
        for name in names:
            for column, lowered in free:
                if matches(lowered, name):
                    return column
    return None


def _check_types(mapping: ColumnMap, types: dict[str, str], name: str) -> None:
    """Refuse up front a document or summary column whose declared type is not text."""
    for role, column in (("document", mapping.document), ("summary", mapping.summary)):
        kind = types.get(column, "text")
        if column and kind not in ("text", "empty"):
            raise ImportProblem(
                f"{name}, column '{column}': holds {kind} values, not text, so it cannot be the "
                f"{role}. Choose the column holding the {role} text in the column mapping"
                + (", or none." if role == "summary" else ".")
            )


def to_record(
    row: dict, mapping: ColumnMap, ref: str, where: str, limit: int = MAX_DOCUMENT_BYTES
) -> Record:
    """A Record from one row, or BadRow saying which column is wrong. NULs are dropped."""
    column = mapping.document
    document = _without_nul(row.get(column))
    if not isinstance(document, str) or not document.strip():
        what = "missing" if document is None else "empty" if isinstance(document, str) else None
        reason = f"the document is {what or _describe(document) + ', not text'}"
        raise BadRow(ref, where, f"column '{column}': {reason}")
    if len(document) > limit:  # characters: a Parquet or dataset cell is already in memory
        raise BadRow(ref, where, f"column '{column}': the document is {over_limit(limit)}",
                     LARGE_ADVICE)  # fmt: skip
    summary = _without_nul(row.get(mapping.summary)) if mapping.summary else None
    if isinstance(summary, str) and not summary.strip():
        summary = None
    if summary is not None and (not isinstance(summary, str) or NUMBER.fullmatch(summary.strip())):
        raise BadRow(
            ref,
            where,
            f"column '{mapping.summary}': the summary is {_describe(summary)}, not text",
            "Choose the column holding the summaries in the column mapping, or choose 'skip "
            "malformed rows' to import the others.",
        )
    title = row.get(mapping.title) if mapping.title else None
    title = None if title is None else _without_nul(str(title)).strip() or None
    return Record(document, summary, title, ref)


def _without_nul(value):
    return value.replace("\x00", "") if isinstance(value, str) else value


def _describe(value) -> str:
    """A value that cannot be a document or summary, for messages (text here is a number)."""
    if isinstance(value, bool):
        return f"true/false ({value})"
    if isinstance(value, int | float | str):
        return f"a number ({value})"
    return {list: "a list", dict: "an object"}.get(type(value), type(value).__name__)
