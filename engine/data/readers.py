"""Table readers for JSONL, CSV/TSV and Parquet files: each returns a `Table`
(engine/data/sources.py) that streams records in batches. Lines are read with a bounded
`readline`, so one huge line is refused before it is held in memory; encodings are sniffed (UTF-8,
UTF-16 with or without a BOM)."""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Iterator
from pathlib import Path

from engine.data import sources
from engine.data.sources import (
    LARGE_ADVICE,
    BadRow,
    ColumnMap,
    ImportProblem,
    Table,
    over_limit,
    parquet_problem,
    unpacked_problem,
)

PEEK_ROWS = 100  # JSONL/CSV rows read up front to find the columns and which hold numbers


BATCH_ROWS = 1024  # rows per Arrow batch read from Parquet and datasets


MAX_DEPTH = 32  # JSON values nested deeper are refused (Python's parser recurses)


SKIP_CHUNK = 1 << 20  # bytes read at a time while skipping the rest of a line over the limit


DOCUMENT_SUFFIXES = (".txt", ".md", ".pdf")


UTF8_BOM = b"\xef\xbb\xbf"
RESAVE = (
    "Re-save it as UTF-8 (Excel: Save As → 'CSV UTF-8'; a text editor: save with encoding "
    "UTF-8) and import it again."
)


# --- text files: UTF-8 or UTF-16 lines with their numbers -------------------------------
def text_lines(path: Path, limit: int) -> Iterator[tuple[int, str | None, int]]:
    """(line number, text, bytes read so far) of a UTF-8 or UTF-16 file, unpacking .gz on the
    way. A line over `limit` bytes (characters in UTF-16) is never held whole: it comes as None.
    A byte-order mark and NULs are dropped; the first byte that is not UTF-8 raises
    ImportProblem, and so does a .gz file that unpacks to more than sources.MAX_BYTES."""
    gz = path.name.lower().endswith(".gz")
    encoding = sniff_encoding(_head(path, gz))
    with open(path, "rb") as raw:
        stream = unpacked = gzip.GzipFile(fileobj=raw) if gz else raw
        if encoding != "utf-8":
            stream = io.TextIOWrapper(stream, encoding=encoding, newline="\n")
        newline = b"\n" if encoding == "utf-8" else "\n"
        counted = encoding == "utf-8" and not gz  # else the file position tells the progress
        number = offset = 0
        try:
            while line := stream.readline(limit + 1):
                number += 1
                start, offset = offset, offset + len(line)
                if gz and unpacked.tell() > sources.MAX_BYTES:  # its position counts unpacked bytes
                    raise unpacked_problem(path.name, unpacked.tell())
                if len(line) > limit and not line.endswith(newline):
                    while line and not line.endswith(newline):  # skip the rest, bounded
                        line = stream.readline(SKIP_CHUNK)
                        offset += len(line)
                        if gz and unpacked.tell() > sources.MAX_BYTES:
                            raise unpacked_problem(path.name, unpacked.tell())
                    yield number, None, offset if counted else raw.tell()
                    continue
                if encoding == "utf-8":
                    if number == 1 and line.startswith(UTF8_BOM):
                        start, line = 3, line[3:]
                    line = _decode(line, path.name, number, start)
                yield number, line.replace("\x00", ""), offset if counted else raw.tell()
        except UnicodeDecodeError as e:  # the UTF-16 decoder, which reads ahead in chunks
            raise ImportProblem(
                f"{path.name}, around line {number + 1}: not valid {encoding.upper()} "
                f"({e.reason}). {RESAVE}"
            ) from None
        except (gzip.BadGzipFile, EOFError) as e:
            raise ImportProblem(
                f"{path.name} is not a complete gzip file ({e}). Compress it again, or import "
                "the file unpacked."
            ) from None


def _decode(line: bytes, name: str, number: int, start: int) -> str:
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError as e:
        column = len(line[: e.start].decode("utf-8", "replace")) + 1
        raise ImportProblem(
            f"{name}, line {number}, column {column} (byte offset {start + e.start}): byte "
            f"0x{line[e.start]:02x} is not UTF-8; the file is probably Latin-1 or Windows-1252. "
            f"{RESAVE}"
        ) from None


def _head(path: Path, gz: bool) -> bytes:
    try:
        with gzip.open(path) if gz else open(path, "rb") as f:
            return f.read(1024)
    except (gzip.BadGzipFile, EOFError):
        return b""  # text_lines says what is wrong with it


def sniff_encoding(head: bytes) -> str:
    """ "utf-16" (with a byte-order mark), "utf-16-le" or "utf-16-be" (without one: ASCII
    characters leave a NUL byte at every odd or every even position), else "utf-8"."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16"
    pairs = len(head) // 2
    even, odd = head[0 : 2 * pairs : 2].count(0), head[1 : 2 * pairs : 2].count(0)
    if pairs >= 2 and odd >= pairs / 5 and even * 10 <= odd:
        return "utf-16-le"
    if pairs >= 2 and even >= pairs / 5 and odd * 10 <= even:
        return "utf-16-be"
    return "utf-8"


def _kind(value) -> str:
    """The kind of one JSON or CSV value: "text", "number", "true/false", "list", …"""
    if isinstance(value, str):
        return "number" if sources.NUMBER.fullmatch(value.strip()) else "text"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "number"
    return {type(None): "empty", list: "list", dict: "object"}.get(type(value), "other")


def _peeked_types(rows: list[dict]) -> dict[str, str]:
    """Column → kind shared by all its non-empty values in the first rows, else "text"."""
    kinds: dict[str, set] = {}
    for row in rows:
        for column, value in row.items():
            kinds.setdefault(column, set()).add(_kind(value))
    types = {}
    for column, found in kinds.items():
        found.discard("empty")
        types[column] = found.pop() if len(found) == 1 else "empty" if not found else "text"
    return types


# --- JSON Lines ----------------------------------------------------------------------------
def jsonl_table(path: Path) -> Table:
    name, peeked, problem, limit = path.name, [], None, sources.max_document_bytes()
    for number, text, _ in text_lines(path, limit):
        line = "" if text is None else text.strip()
        if text is not None and not line:
            continue
        if not peeked and problem is None and (line.startswith("[") or line == "{"):
            what, jq = ("array", ".[]") if line.startswith("[") else ("document", ".")
            raise ImportProblem(
                f"{name} holds one JSON {what} over many lines, not JSON Lines (one object per "
                f"line). Convert it, e.g. jq -c '{jq}' {name} > {path.stem}.jsonl, and import that."
            )
        row = _jsonl_row(text, f"{name}:{number}", f"line {number}", limit)
        if isinstance(row, BadRow):
            problem = problem or f"line {number}: {row.reason}"
        else:
            peeked.append(row)
        if number >= PEEK_ROWS:
            break
    if problem is None and not peeked:
        raise ImportProblem(f"{name} has no rows: the file is empty.")
    if not peeked:
        raise ImportProblem(
            f"{name}: none of the first lines is a JSON object ({problem}). Each line must hold "
            'one object, like {"document": "…", "summary": "…"}.'
        )
    columns = list(dict.fromkeys(c for row in peeked for c in row))
    types = _peeked_types(peeked)
    return Table(columns, path.stat().st_size, lambda _: _jsonl_rows(path, limit), types)


def _jsonl_rows(path: Path, limit: int):
    for number, text, done in text_lines(path, limit):
        if text is None or text.strip():
            ref, where = f"{path.name}:{number}", f"{path.name}, line {number}"
            yield ref, where, _jsonl_row(text, ref, where, limit), done


def _jsonl_row(line: str | None, ref: str, where: str, limit: int) -> dict | BadRow:
    if line is None:
        return BadRow(ref, where, f"the line is {over_limit(limit)}", LARGE_ADVICE)
    try:
        row = json.loads(line)
    except json.JSONDecodeError as e:
        return BadRow(ref, where, f"malformed JSON at column {e.colno} ({e.msg})")
    except RecursionError:
        row = None
    except ValueError:  # int() refuses numbers of over 4,300 digits
        return BadRow(ref, where, "malformed JSON (a number with too many digits)")
    if row is None or _too_deep(row):
        return BadRow(ref, where, f"JSON values nested more than {MAX_DEPTH} levels deep")
    if not isinstance(row, dict):
        return BadRow(ref, where, f"a JSON {type(row).__name__}, not an object")
    return row


def _too_deep(value) -> bool:
    """Whether a parsed JSON value nests lists and objects deeper than MAX_DEPTH (no recursion:
    it runs only when a value holds a list or object)."""
    stack = [(value, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            return True
        children = value.values() if isinstance(value, dict) else value
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return False


# --- CSV and TSV ---------------------------------------------------------------------------
def csv_table(path: Path, header: bool = True) -> Table:
    """A CSV/TSV file whose first record names the columns, or, with `header` False, whose
    every record is a row and whose columns are named col1…colN (sources.headless_columns)."""
    limit = sources.max_document_bytes()
    records = _csv_records(path, limit)
    first = next(records, None) if header else None
    peeked = [fields for _, (_, _, fields) in zip(range(PEEK_ROWS), records)]
    records.close()
    if first is None and (header or not peeked):
        raise ImportProblem(f"{path.name} has no rows: the file is empty.")
    if header and first[2] is None:
        raise ImportProblem(f"{path.name}: the header line is {over_limit(limit)}.")
    if header:
        columns = [c.strip() for c in first[2]]
    else:
        columns = sources.headless_columns(max(len(f or []) for f in peeked))
    if not peeked:
        raise ImportProblem(f"{path.name} has a header ({', '.join(columns)}) but no rows.")
    types = _peeked_types([dict(zip(columns, fields)) for fields in peeked if fields])

    def rows(_mapping: ColumnMap):
        return _csv_rows(path, columns, limit, header)

    return Table(columns, path.stat().st_size, rows, types)


def _csv_rows(path: Path, columns: list[str], limit: int, header: bool = True):
    records = _csv_records(path, limit)
    if header:
        next(records)
    for line, done, fields in records:
        ref, where = f"{path.name}:{line}", f"{path.name}, line {line}"
        if fields is None:
            row: dict | BadRow = BadRow(
                ref, where, f"the line is {over_limit(limit)}", LARGE_ADVICE
            )
        elif len(fields) > len(columns):
            row = BadRow(
                ref,
                where,
                f"{len(fields)} fields but the {'header has' if header else 'first rows have'} "
                f"{len(columns)}; a field holding the delimiter must be in double quotes",
            )
        else:
            row = dict(zip(columns, fields))  # missing trailing fields read as empty
        yield ref, where, row, done


def _csv_records(path: Path, limit: int) -> Iterator[tuple[int, int, list[str] | None]]:
    """(first line, bytes read, fields) of each non-blank record; a record may span lines.
    A record whose one line is over `limit` comes with fields None; one whose lines together
    are over it cannot be skipped (where it ends is unknown) and raises ImportProblem."""
    tsv = path.name.lower().endswith((".tsv", ".tsv.gz"))
    kind = "TSV" if tsv else "CSV"
    read = {"line": 0, "done": 0, "start": 1, "size": 0, "too_long": False}  # of the record
    csv.field_size_limit(limit)  # documents are long; the default limit is 128 KiB

    def texts():
        for number, text, done in text_lines(path, limit):
            read.update(line=number, done=done)
            if text is None and read["size"] == 0:
                read["too_long"] = True
                yield "\n"  # a blank line for the reader: the record is reported instead
                continue
            read["size"] += limit + 1 if text is None else len(text)
            if read["size"] > limit:
                raise _record_too_long(path.name, read["start"], limit)
            yield text

    reader = csv.reader(texts(), delimiter="\t" if tsv else ",", strict=True)
    while True:
        line = read["line"] + 1
        read.update(start=line, size=0, too_long=False)
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            if "field larger than field limit" in str(e):
                raise _record_too_long(path.name, line, limit) from None
            raise ImportProblem(
                f"{path.name}, line {line}: malformed {kind} ({e}). A field holding quotes, the "
                "delimiter or a line break must be in double quotes, with its own quotes doubled "
                '(""). Fix the line and import again.'
            ) from None
        if read["too_long"]:
            yield line, read["done"], None
        elif fields:
            yield line, read["done"], fields


def _record_too_long(name: str, line: int, limit: int) -> ImportProblem:
    return ImportProblem(
        f"{name}, line {line}: the record that starts here is {over_limit(limit)}; a quoted "
        "field that is never closed is the usual cause. Close it, or shorten or split that "
        "document, and import again."
    )


# --- Parquet -------------------------------------------------------------------------------
def parquet_table(path: Path) -> Table:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        with pq.ParquetFile(path) as pf:
            schema, total = pf.schema_arrow, pf.metadata.num_rows
    except (pa.ArrowException, OSError, ValueError) as e:
        raise ImportProblem(
            f"{path.name} is not a readable Parquet file ({e}). Write or download it again."
        ) from None
    if total == 0:
        raise ImportProblem(f"{path.name} has no rows.")
    types = {f.name: _arrow_kind(f.type) for f in schema}

    def rows(mapping: ColumnMap):
        index = 0
        with pq.ParquetFile(path) as pf:
            limit = sources.max_document_bytes()
            if problem := parquet_problem(path.name, pf.metadata, _wanted(mapping), limit):
                raise problem
            for batch in pf.iter_batches(batch_size=BATCH_ROWS, columns=_wanted(mapping)):
                for row in batch.to_pylist():
                    where = f"{path.name}, row index {index}"
                    yield f"{path.name}:{index}", where, row, index + 1
                    index += 1

    return Table(list(schema.names), total, rows, types)


def _arrow_kind(t) -> str:
    import pyarrow as pa

    if pa.types.is_dictionary(t):  # a pandas categorical column
        t = t.value_type
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "text"
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        return "number"
    return {"bool": "true/false", "null": "empty"}.get(str(t), str(t))


def _wanted(mapping: ColumnMap) -> list[str]:
    return list(dict.fromkeys(c for c in (mapping.document, mapping.summary, mapping.title) if c))


def _first_line(e: Exception) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]
