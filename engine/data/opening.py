"""Open an import source: find the format of a path, folder or Hugging Face dataset name, check
it, map its columns up front, and hand back a `Source` that streams `Record`s in batches, so a
large file never sits in memory whole. Nothing here touches the database: engine/data/imports.py
stores the batches in one transaction and rolls back when an `ImportProblem` is raised, before or
during streaming.

Who may read what: the console (CLI) is the machine's owner and imports any path the OS lets
it read. The web app passes its signed-in user: `check_import_path` lets everyone import
what the app saved from their own upload, and admins a path inside the import folders
(`engine.paths.import_dirs`) or a Hugging Face dataset by name; refusals never say whether
a path outside those folders exists.

Try it: python -m engine.data.opening PATH   (prints the detected columns and the first record)
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from engine.auth import CONSOLE  # the `user` of the CLI: any readable path
from engine.data import sources
from engine.data.sources import (
    EXTENSIONS,
    SPLIT_ADVICE,
    BadRow,
    ColumnMap,
    ImportProblem,
    Record,
    Table,
    _check_types,
    header_warning,
    max_document_bytes,
    resolve_mapping,
    rows_problem,
    size_problem,
    to_record,
)

_HUB_NAME = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")


_OWNER_NAME = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")  # hub names the web app takes


class Source:
    """An opened import source; streams records in batches, so large files never sit in memory."""

    def __init__(self, kind: str, table: Table, mapping: ColumnMap, skip_bad_rows: bool):
        self.kind = kind  # "jsonl" | "csv" | "parquet" | "folder" | "hf"
        self.columns = table.columns  # columns found (for the UI's column-mapping override)
        self.mapping = mapping
        self.total = table.total  # bytes (jsonl, csv), rows (parquet, hf) or files (folder)
        self.skipped: list[tuple[str, str]] = []  # (ref, reason) of rows skipped
        self._table, self._skip = table, skip_bad_rows
        self._limit = max_document_bytes()

    def batches(self, batch_size: int = 5000) -> Iterator[tuple[list[Record], int]]:
        """Yield (records, progress so far in the unit of `total`). Raises ImportProblem at the
        first bad row unless skipping bad rows, which records them in `skipped` instead, and
        at the row after MAX_ROWS."""
        self.skipped = list(self._table.ignored)
        batch: list[Record] = []
        done = 0
        for n, (ref, where, row, done) in enumerate(self._table.rows(self.mapping), 1):
            if n > sources.MAX_ROWS:
                raise rows_problem(ref.rsplit(":", 1)[0])
            try:
                if isinstance(row, BadRow):
                    raise row
                batch.append(
                    row
                    if isinstance(row, Record)
                    else to_record(row, self.mapping, ref, where, self._limit)
                )
            except BadRow as e:
                if not self._skip:
                    raise
                self.skipped.append((e.ref, e.reason))
            if len(batch) >= batch_size:
                yield batch, done
                batch = []
        if batch:
            yield batch, done


@dataclass
class Preview:
    """What importing a CSV/TSV file would read, shown before the import."""

    columns: list[str]
    rows: list[list[str]]  # the first rows' fields, in the order of `columns`
    mapping: ColumnMap | None  # the columns the import would use; None when none fits
    problem: str | None  # why there is no mapping, for people
    warning: str | None  # the header looks like data (sources.header_warning)


def preview_csv(
    path: Path, mapping: ColumnMap | None = None, header: bool = True, n_rows: int = 5
) -> Preview:
    """The first `n_rows` rows of a CSV/TSV file as an import would read them, the column
    mapping it would use and a warning when the header looks like data. Without a header and
    without a mapping, the column with the longest values is proposed as the document and the
    next longest as the summary. Raises ImportProblem when the file cannot be read at all."""
    from engine.data import readers

    table = readers.csv_table(path, header)
    rows: list[list[str]] = []
    for _, _, row, _ in table.rows(ColumnMap("")):
        if len(rows) >= n_rows:
            break
        if not isinstance(row, BadRow):
            rows.append([row.get(c, "") for c in table.columns])
    if not header and mapping is None:
        order = sorted(range(len(table.columns)), key=lambda i: -_median_length(rows, i))
        longest = [table.columns[i] for i in order]
        mapping = ColumnMap(longest[0], longest[1] if len(longest) > 1 else "", "")
    warning = header_warning(table.columns, rows) if header else None
    try:
        chosen = resolve_mapping(mapping, table.columns, table.types)
        _check_types(chosen, table.types or {}, path.name)
    except ImportProblem as e:
        return Preview(table.columns, rows, None, str(e), warning)
    return Preview(table.columns, rows, chosen, None, warning)


def _median_length(rows: list[list[str]], i: int) -> int:
    lengths = sorted(len(r[i]) for r in rows)
    return lengths[len(lengths) // 2] if lengths else 0


def open_source(
    path_or_name: str | Path,
    mapping: ColumnMap | None = None,
    skip_bad_rows: bool = False,
    hf_split: str = "train",
    user: dict | None = CONSOLE,
    header: bool = True,
) -> Source:
    """Open a .jsonl/.json(.gz), .csv/.tsv(.gz) or .parquet file, a folder of .txt/.md/.pdf files
    (or one such file), or a Hugging Face dataset (a folder saved with `save_to_disk`, or a hub
    name). Raises ImportProblem when the source cannot be imported as it is. Documents read
    from files have no columns: a mapping is ignored for them. `user`: CONSOLE (the CLI), or
    the web app's signed-in user (None when nobody is), confined by `check_import_path`.
    `header` False: a CSV/TSV file's first line is data, its columns col1…colN."""
    from engine.data import documents, hub, readers
    from engine.paths import import_dirs

    text, dirs = str(path_or_name).strip(), None
    if user is CONSOLE:
        kind, path = _locate(text)
    else:
        target, dirs = check_import_path(text, user), import_dirs()
        kind, path = ("hf", None) if isinstance(target, str) else _locate(str(target))
    name = path.name if path else text
    if kind == "hf":
        table = hub.hf_table(path, name, hf_split, confined=dirs is not None)
    elif kind == "folder":  # each file is a document: no column mapping
        table = documents.folder_table(path, dirs)
        return Source(kind, table, ColumnMap("document", None, "title"), skip_bad_rows)
    elif kind == "csv":
        table = readers.csv_table(path, header)
    else:
        table = getattr(readers, f"{kind}_table")(path)
    try:
        mapping = resolve_mapping(mapping, table.columns, table.types)
    except ImportProblem as e:
        raise ImportProblem(f"{name}: {e}") from None
    _check_types(mapping, table.types or {}, name)
    return Source(kind, table, mapping, skip_bad_rows)


def _locate(text: str) -> tuple[str, Path | None]:
    """(kind, path) of an existing file or folder, or ("hf", None) for a hub dataset name."""
    path = Path(text).expanduser()
    if path.is_dir():
        saved = (path / "dataset_dict.json").exists() or (path / "state.json").exists()
        return ("hf" if saved else "folder"), path
    if path.is_file():
        kind = next((k for ext, k in EXTENSIONS.items() if path.name.lower().endswith(ext)), None)
        if kind is None:
            raise ImportProblem(
                f"{path.name}: files ending in '{''.join(path.suffixes) or '(none)'}' cannot be "
                f"imported. Supported: {', '.join(EXTENSIONS)}, a folder of .txt/.md/.pdf "
                "files, or a Hugging Face dataset (name or folder saved with save_to_disk)."
            )
        if problem := size_problem(path):
            raise ImportProblem(f"{path.name} {problem}. {SPLIT_ADVICE}")
        return kind, path
    if text and _HUB_NAME.fullmatch(text) and not _is_file_name(text):
        return "hf", None
    where = "" if path.is_absolute() else f" (looked in {Path.cwd()})"
    raise ImportProblem(
        f"No file or folder at '{text}'{where}. Check the path, or give a Hugging Face dataset "
        "by its name, such as 'FiscalNote/billsum'."
    )


def check_import_path(text: str, user: dict | None) -> Path | str:
    """Where the web app's signed-in `user` may import `text` from: a resolved file or folder
    path, or a Hugging Face dataset name ("owner/name"). Everyone signed in may import what the
    app saved from an upload (under <data>/uploads); admins ("import_path") also a path in the
    import folders (a relative one is looked up there) or a hub dataset. Anything else raises
    ImportProblem with one message that never says whether the path exists."""
    from engine.auth import can
    from engine.paths import import_dirs, inside_import_dirs, uploads_dir

    dirs, path = import_dirs(), Path(text).expanduser()
    plain = bool(text) and ".." not in path.parts  # `..` is refused even when it stays inside
    if user and plain and path.is_absolute():
        if found := inside_import_dirs(path, [uploads_dir().resolve()]):
            return found
    if not can(user, "import_path"):
        raise ImportProblem(
            "Your account cannot import by path or by dataset name. Upload the files instead, "
            "or ask an admin to import them."
        )
    if plain:
        for candidate in [path] if path.is_absolute() else [d / path for d in dirs]:
            found = inside_import_dirs(candidate, dirs)
            if found and (path.is_absolute() or found.exists()):
                return found
        if _OWNER_NAME.fullmatch(text) and not _is_file_name(text):
            return text
        if not path.is_absolute() and (found := inside_import_dirs(dirs[0] / path, dirs)):
            return found  # not there: open_source says so, naming the import folder
    raise ImportProblem(
        f"Import by path reads only from the import folders: {', '.join(map(str, dirs))}. Put "
        "the file or folder in one of them and give its path (or its name there), or give a "
        "Hugging Face dataset by its name, such as 'FiscalNote/billsum'."
    )


def _is_file_name(text: str) -> bool:
    return any(text.lower().endswith(ext) for ext in EXTENSIONS)


if __name__ == "__main__":
    try:
        source = open_source(sys.argv[1])
        print(f"{source.kind}: columns {source.columns} → {source.mapping}")
        print(next(source.batches(1))[0][0])
    except ImportProblem as e:
        sys.exit(f"error: {e}")
