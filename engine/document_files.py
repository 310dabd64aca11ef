"""Documents stored one per file: a folder of .txt, .md and .pdf files, or one such file.

Each file is one document with no summary; its title is the file name without the extension.
PDF text comes from pypdf with the pages joined by form feeds ("\\f"), so the cleaner can find
headers and footers repeated on every page. Used by `engine.importers.open_source`.

Try it: python -m engine.document_files FILE.pdf   (prints the text, pages split by ^L)
"""

from __future__ import annotations

import sys
from pathlib import Path

from engine.importers import BadRow, ImportProblem, Record, Table, size_problem

SUFFIXES = (".txt", ".md", ".pdf")
UTF8_BOM = b"\xef\xbb\xbf"


def folder_table(path: Path) -> Table:
    """A Table with a row per .txt/.md/.pdf file under path (searched recursively, hidden files
    left out) or for path itself. Other files are listed in `ignored`."""
    if path.is_file():
        files, others, refs = [path], [], {path: path.name}
    else:
        found = sorted(
            p
            for p in path.rglob("*")
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)
        )
        files = [p for p in found if p.suffix.lower() in SUFFIXES]
        others = [p for p in found if p.suffix.lower() not in SUFFIXES]
        refs = {p: f"{path.name}/{p.relative_to(path).as_posix()}" for p in found}
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
                row: Record | BadRow = Record(document_text(p, ref), None, p.stem, ref)
            except BadRow as e:
                row = e
            yield ref, ref, row, done

    ignored = [(refs[p], "not a .txt, .md or .pdf file, so not imported") for p in others]
    return Table(["document", "title"], len(files), rows, ignored=ignored)


def document_text(path: Path, ref: str) -> str:
    """The text of one .txt, .md or .pdf file, or BadRow saying why it has none."""
    if problem := size_problem(path):
        raise BadRow(ref, ref, f"the file {problem}", "Split it into smaller files.")
    if path.suffix.lower() == ".pdf":
        return _pdf_document(path, ref)
    data = path.read_bytes()
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise BadRow(ref, ref, "the file is UTF-16 encoded", "Re-save it as UTF-8.")
    try:
        text = data.removeprefix(UTF8_BOM).decode("utf-8")
    except UnicodeDecodeError as e:
        start = e.start + (3 if data.startswith(UTF8_BOM) else 0)
        line = data.count(b"\n", 0, start) + 1
        raise BadRow(
            ref,
            ref,
            f"line {line} (byte offset {start}): byte 0x{data[start]:02x} is not UTF-8",
            "Re-save the file as UTF-8 and import it again, or choose 'skip malformed rows' "
            "to import the others.",
        ) from None
    if not text.strip():
        raise BadRow(ref, ref, "the file is empty")
    return text


def _pdf_document(path: Path, ref: str) -> str:
    try:
        text = pdf_text(path)
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


def pdf_text(path: Path) -> str:
    """The text of every page of a PDF, pages joined by form feeds ("\\f")."""
    from pypdf import PdfReader

    pages = PdfReader(path).pages
    return "\f".join((page.extract_text() or "").rstrip("\n") for page in pages)


if __name__ == "__main__":
    print(pdf_text(Path(sys.argv[1])).replace("\f", "\n^L\n"))
