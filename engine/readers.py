"""The format readers behind `engine.importers.open_source`, one `*_table(path)` per format.

Each checks up front what it cheaply can (encoding and columns of the first lines, the Parquet
schema, the dataset split) and returns a `Table` whose `rows(mapping)` streams
(ref, where, row, progress). A bad row is yielded as a `BadRow` for the `Source` to raise or
skip; a bad file raises `ImportProblem` on the spot.
"""

from __future__ import annotations

import csv
import gzip
import json
from collections.abc import Iterator
from pathlib import Path

from engine import importers
from engine.importers import BadRow, ColumnMap, ImportProblem, Table

PEEK_ROWS = 100  # JSONL/CSV rows read up front to find the columns and which hold numbers
BATCH_ROWS = 1024  # rows per Arrow batch read from Parquet and datasets
DOCUMENT_SUFFIXES = (".txt", ".md", ".pdf")
UTF8_BOM = b"\xef\xbb\xbf"
RESAVE = (
    "Re-save it as UTF-8 (Excel: Save As → 'CSV UTF-8'; a text editor: save with encoding "
    "UTF-8) and import it again."
)


# --- text files: UTF-8 lines with their numbers --------------------------------------------
def text_lines(path: Path) -> Iterator[tuple[int, str, int]]:
    """(line number, text, bytes read so far) of a UTF-8 file, unpacking .gz on the way.
    A UTF-8 byte-order mark is dropped; the first byte that is not UTF-8 raises ImportProblem."""
    gz = path.name.lower().endswith(".gz")
    with open(path, "rb") as raw:
        lines = gzip.GzipFile(fileobj=raw) if gz else raw
        offset = 0
        try:
            for number, line in enumerate(lines, 1):
                start, offset = offset, offset + len(line)
                if number == 1:
                    _check_bom(line, path.name)
                    start, line = (3, line[3:]) if line.startswith(UTF8_BOM) else (0, line)
                try:
                    text = line.decode("utf-8")
                except UnicodeDecodeError as e:
                    column = len(line[: e.start].decode("utf-8", "replace")) + 1
                    raise ImportProblem(
                        f"{path.name}, line {number}, column {column} (byte offset "
                        f"{start + e.start}): byte 0x{line[e.start]:02x} is not UTF-8; the file "
                        f"is probably Latin-1 or Windows-1252. {RESAVE}"
                    ) from None
                yield number, text, raw.tell() if gz else offset
        except (gzip.BadGzipFile, EOFError) as e:
            raise ImportProblem(
                f"{path.name} is not a complete gzip file ({e}). Compress it again, or import "
                "the file unpacked."
            ) from None


def _check_bom(start: bytes, name: str) -> None:
    if start.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ImportProblem(f"{name} is UTF-16 encoded (it starts with a UTF-16 mark). {RESAVE}")


def _kind(value) -> str:
    """The kind of one JSON or CSV value: "text", "number", "true/false", "list", …"""
    if isinstance(value, str):
        return "number" if importers.NUMBER.fullmatch(value.strip()) else "text"
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
    name, peeked, problem = path.name, [], None
    for number, text, _ in text_lines(path):
        line = text.strip()
        if not line:
            continue
        if not peeked and problem is None and (line.startswith("[") or line == "{"):
            what, jq = ("array", ".[]") if line.startswith("[") else ("document", ".")
            raise ImportProblem(
                f"{name} holds one JSON {what} over many lines, not JSON Lines (one object per "
                f"line). Convert it, e.g. jq -c '{jq}' {name} > {path.stem}.jsonl, and import that."
            )
        row = _parse(line, f"{name}:{number}", f"line {number}")
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
    return Table(columns, path.stat().st_size, lambda _: _jsonl_rows(path), _peeked_types(peeked))


def _jsonl_rows(path: Path):
    for number, text, done in text_lines(path):
        if text.strip():
            ref, where = f"{path.name}:{number}", f"{path.name}, line {number}"
            yield ref, where, _parse(text, ref, where), done


def _parse(line: str, ref: str, where: str) -> dict | BadRow:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as e:
        return BadRow(ref, where, f"malformed JSON at column {e.colno} ({e.msg})")
    if not isinstance(row, dict):
        return BadRow(ref, where, f"a JSON {type(row).__name__}, not an object")
    return row


# --- CSV and TSV ---------------------------------------------------------------------------
def csv_table(path: Path) -> Table:
    csv.field_size_limit(2**31 - 1)  # documents are long; the default limit is 128 KiB
    records = _csv_records(path)
    header = next(records, None)
    peeked = [fields for _, (_, _, fields) in zip(range(PEEK_ROWS), records)]
    records.close()
    if header is None:
        raise ImportProblem(f"{path.name} has no rows: the file is empty.")
    columns = [c.strip() for c in header[2]]
    if not peeked:
        raise ImportProblem(f"{path.name} has a header ({', '.join(columns)}) but no rows.")
    types = _peeked_types([dict(zip(columns, fields)) for fields in peeked])
    return Table(columns, path.stat().st_size, lambda _: _csv_rows(path, columns), types)


def _csv_rows(path: Path, columns: list[str]):
    records = _csv_records(path)
    next(records)  # the header
    for line, done, fields in records:
        ref, where = f"{path.name}:{line}", f"{path.name}, line {line}"
        row: dict | BadRow = dict(zip(columns, fields))  # missing trailing fields read as empty
        if len(fields) > len(columns):
            row = BadRow(
                ref,
                where,
                f"{len(fields)} fields but the header has {len(columns)}; a field holding the "
                "delimiter must be in double quotes",
            )
        yield ref, where, row, done


def _csv_records(path: Path) -> Iterator[tuple[int, int, list[str]]]:
    """(first line, bytes read, fields) of each non-blank record; a record may span lines."""
    tsv = path.name.lower().endswith((".tsv", ".tsv.gz"))
    read = [0, 0]  # lines and bytes read so far

    def texts():
        for number, text, done in text_lines(path):
            read[:] = number, done
            yield text

    reader = csv.reader(texts(), delimiter="\t" if tsv else ",", strict=True)
    while True:
        line = read[0] + 1
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            raise ImportProblem(
                f"{path.name}, line {line}: malformed {'TSV' if tsv else 'CSV'} ({e}). A field "
                "holding quotes, the delimiter or a line break must be in double quotes, with "
                'its own quotes doubled (""). Fix the line and import again.'
            ) from None
        if fields:
            yield line, read[1], fields


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


# --- Hugging Face datasets -----------------------------------------------------------------
def hf_table(path: Path | None, name: str, split: str) -> Table:
    """A dataset saved with `save_to_disk` at path, or the hub dataset `name` when path is None."""
    import datasets

    if path is None:
        try:
            data = datasets.load_dataset(name, split=split)
        except Exception as e:  # offline, unknown name, gated, unknown split: all say the same
            raise ImportProblem(
                f"The Hugging Face dataset '{name}' (split '{split}') could not be reached: "
                f"{_first_line(e)}. '{name}' is not a file or folder here either. Check the name, "
                "the split and the internet connection, or save the dataset with save_to_disk "
                "on a connected machine and import that folder."
            ) from None
        label = f"{name}/{split}"
    else:
        try:
            data = datasets.load_from_disk(str(path))
        except Exception as e:  # datasets raises several kinds for a damaged folder
            raise ImportProblem(
                f"{name} is not a readable saved Hugging Face dataset ({_first_line(e)}). Save "
                "it again with save_to_disk."
            ) from None
        label = name
        if isinstance(data, datasets.DatasetDict):
            if split not in data:
                raise ImportProblem(
                    f"{name} has no split '{split}' (splits: {', '.join(data)}). Choose one."
                )
            data, label = data[split], f"{name}/{split}"
    if len(data) == 0:
        raise ImportProblem(f"{label} has no rows.")
    types = {column: _feature_kind(f) for column, f in data.features.items()}

    def rows(mapping: ColumnMap):
        wanted, index = _wanted(mapping), 0
        for batch in data.select_columns(wanted).iter(batch_size=BATCH_ROWS):
            for values in zip(*(batch[c] for c in wanted)):
                where = f"{label}, row index {index}"
                yield f"hf:{label}:{index}", where, dict(zip(wanted, values)), index + 1
                index += 1

    return Table(list(data.column_names), len(data), rows, types)


def _feature_kind(feature) -> str:
    import datasets

    if isinstance(feature, datasets.ClassLabel):
        return "number"
    dtype = getattr(feature, "dtype", None) if isinstance(feature, datasets.Value) else None
    if dtype in ("string", "large_string", "string_view"):
        return "text"
    if dtype and dtype.startswith(("int", "uint", "float")):
        return "number"
    return {"bool": "true/false", "null": "empty"}.get(dtype, type(feature).__name__.lower())


def _first_line(e: Exception) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]
