"""Documents stored one per file: a folder of .txt, .md and .pdf files, or one such file.

Each file is one document with no summary; its title is the file name without the extension.
PDF text comes from pypdf with the pages joined by form feeds ("\\f"), so the cleaner can find
headers and footers repeated on every page. Text files are UTF-8 or UTF-16 (with or without a
byte-order mark); NULs are dropped; a file over the document limit is a bad row. Used by
`engine.importers.open_source`.

Try it: python -m engine.data.documents FILE.pdf   (prints the text, pages split by ^L)
"""

from __future__ import annotations

import sys
from pathlib import Path

from engine.data.readers import UTF8_BOM, sniff_encoding
from engine.data.sources import (
    LARGE_ADVICE,
    BadRow,
    ImportProblem,
    Record,
    Table,
    max_document_bytes,
    over_limit,
    size_problem,
)
from engine.paths import inside_import_dirs

SUFFIXES = (".txt", ".md", ".pdf")


def folder_table(path: Path, dirs: list[Path] | None = None) -> Table:
    """A Table with a row per .txt/.md/.pdf file under path (searched recursively, hidden files
    left out) or for path itself. Other files are listed in `ignored`, and so are links that
    lead outside `dirs` (the import folders, when the web app imports)."""
    limit = max_document_bytes()
    if path.is_file():
        files, others, outside, refs = [path], [], [], {path: path.name}
    else:
        found = sorted(
            p
            for p in path.rglob("*")
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)
        )
        outside = [p for p in found if dirs is not None and not inside_import_dirs(p, dirs)]
        found = [p for p in found if p not in outside]
        files = [p for p in found if p.suffix.lower() in SUFFIXES]
        others = [p for p in found if p.suffix.lower() not in SUFFIXES]
        refs = {p: f"{path.name}/{p.relative_to(path).as_posix()}" for p in found + outside}
    if not files:
        shown = ", ".join(p.name for p in others[:5]) + (", …" if len(others) > 5 else "")
        raise ImportProblem(
            f"{path.name} holds no .txt, .md or .pdf files (found: {shown or 'nothing'}). Put "
            "one document per file, or import a table file (JSONL, CSV, Parquet) by itself."
        )

    def rows(_mapping):
        for done, p in enumerate(files, 1):
            ref = refs[p]
            try:
                row: Record | BadRow = Record(document_text(p, ref, limit), None, p.stem, ref)
            except BadRow as e:
                row = e
            yield ref, ref, row, done

    ignored = [(refs[p], "not a .txt, .md or .pdf file, so not imported") for p in others]
    ignored += [(refs[p], "a link to outside the import folders, so not imported") for p in outside]
    return Table(["document", "title"], len(files), rows, ignored=ignored)


def document_text(path: Path, ref: str, limit: int) -> str:
    """The text of one .txt, .md or .pdf file, or BadRow saying why it has none."""
    if path.suffix.lower() == ".pdf":
        if problem := size_problem(path):
            raise BadRow(ref, ref, f"the file {problem}", "Split it into smaller files.")
        return _pdf_document(path, ref, limit)
    if path.stat().st_size > limit:
        raise BadRow(ref, ref, f"the file is {over_limit(limit)}", LARGE_ADVICE)
    data = path.read_bytes()
    encoding = sniff_encoding(data[:1024])
    try:
        text = data.removeprefix(UTF8_BOM).decode(encoding)
    except UnicodeDecodeError as e:
        if encoding != "utf-8":
            raise BadRow(ref, ref, f"not valid {encoding.upper()} ({e.reason})",
                         "Re-save the file as UTF-8 and import it again.") from None  # fmt: skip
        start = e.start + (3 if data.startswith(UTF8_BOM) else 0)
        line = data.count(b"\n", 0, start) + 1
        raise BadRow(
            ref,
            ref,
            f"line {line} (byte offset {start}): byte 0x{data[start]:02x} is not UTF-8",
            "Re-save the file as UTF-8 and import it again, or choose 'skip malformed rows' "
            "to import the others.",
        ) from None
    text = text.replace("\x00", "")
    if not text.strip():
        raise BadRow(ref, ref, "the file is empty")
    return text


def _pdf_document(path: Path, ref: str, limit: int) -> str:
    try:
        text = pdf_text(path, limit)
    except DocumentTooLarge:
        raise BadRow(ref, ref, f"its text is {over_limit(limit)}", LARGE_ADVICE) from None
    except Exception as e:  # pypdf raises many kinds on damaged or protected files
        raise BadRow(
            ref,
            ref,
            f"could not be read as a PDF ({type(e).__name__}: {e})",
            "If it is damaged, export it again; if it has a password, save a copy without "
            "one. Or choose 'skip malformed rows' to import the others.",
        ) from None
    if not text.replace("\f", "").strip():
        raise BadRow(
            ref,
            ref,
            f"no extractable text in its {text.count(chr(12)) + 1} page(s); it is probably "
            "scanned images",
            "Run OCR on it first (for example: ocrmypdf in.pdf out.pdf) and import the result, "
            "or choose 'skip malformed rows' to import the others.",
        )
    return text


class DocumentTooLarge(Exception):
    """A PDF's text grew over the limit; reading stopped there."""


def pdf_text(path: Path, limit: int | None = None) -> str:
    """The text of every page of a PDF, pages joined by form feeds ("\\f"), NULs dropped.
    Raises DocumentTooLarge as soon as the text is over `limit` characters."""
    from pypdf import PdfReader

    pages, size = [], 0
    for page in PdfReader(path).pages:
        pages.append((page.extract_text() or "").rstrip("\n").replace("\x00", ""))
        size += len(pages[-1]) + 1
        if limit is not None and size > limit:
            raise DocumentTooLarge
    return "\f".join(pages)


if __name__ == "__main__":
    print(pdf_text(Path(sys.argv[1])).replace("\f", "\n^L\n"))
