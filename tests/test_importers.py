"""engine.importers: every format's happy path, column detection and override, and the bad
inputs a person must be told about (what, where, what to do). Fixture files are written under
tmp_path by each test; PDFs are written by hand with a text content stream."""

import csv
import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from engine.data import sources
from engine.data.opening import open_source
from engine.data.sources import ColumnMap, ImportProblem, Record, detect_columns

CONGRESS_TRAIN = (
    Path(__file__).resolve().parents[1].parent / "shared" / "data" / "congress119" / "train.jsonl"
)
DOC = "SECTION 1. The Secretary shall award grants to States for safer school crossings."


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def write_csv(path: Path, rows: list[list], delimiter: str = ",") -> Path:
    with open(path, "w", encoding="utf-8", newline="") as f:
        csv.writer(f, delimiter=delimiter).writerows(rows)
    return path


def write_pdf(path: Path, pages: list[list[str]]) -> Path:
    """A minimal valid PDF: one Helvetica text line per string, one page per list."""
    objects = ["<< /Type /Catalog /Pages 2 0 R >>", "", "<< /Type /Font /Subtype /Type1 "
               "/BaseFont /Helvetica >>"]  # fmt: skip
    kids = []
    for lines in pages:
        stream = "BT /F1 12 Tf 72 720 Td " + "".join(f"({t}) Tj 0 -16 Td " for t in lines) + "ET"
        objects.append(f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream")
        objects.append(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font "
            f"<< /F1 3 0 R >> >> /Contents {len(objects)} 0 R >>"
        )
        kids.append(f"{len(objects)} 0 R")
    objects[1] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(kids)} >>"
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode("latin-1")
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{o:010d} 00000 n \n" for o in offsets).encode()
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    )
    path.write_bytes(bytes(out))
    return path


def read_all(source, batch_size: int = 5000) -> list[Record]:
    return [r for records, _ in source.batches(batch_size) for r in records]


# --- column detection ----------------------------------------------------------------------
def test_detect_columns_exact_then_prefix_then_contains_case_insensitive():
    assert detect_columns(["id", "Text", "Summary", "Title"]) == ColumnMap(
        "Text", "Summary", "Title"
    )
    assert detect_columns(["input_text", "target_text"]) == ColumnMap("input_text", "target_text")
    assert detect_columns(["article", "highlights", "id"]) == ColumnMap("article", "highlights")
    assert detect_columns(["opinion_full_text", "headnote_summ"]).summary == "headnote_summ"
    # an exact name wins over an earlier column that only contains one
    assert detect_columns(["context", "text"]).document == "text"


def test_detect_columns_never_picks_a_numeric_column_as_summary():
    types = {"text": "text", "label": "number"}
    assert detect_columns(["text", "label"], types) == ColumnMap("text", None, None)


def test_detect_columns_without_a_document_column_lists_what_was_found():
    with pytest.raises(ImportProblem, match="columns found: id, score") as e:
        detect_columns(["id", "score"])
    assert "bill_text" in str(e.value) and "column mapping" in str(e.value)
    with pytest.raises(ImportProblem, match=r"columns found: text \(number\), id"):
        detect_columns(["text", "id"], {"text": "number", "id": "text"})


# --- JSON Lines ----------------------------------------------------------------------------
def test_jsonl_streams_records_with_refs_and_progress(tmp_path):
    rows = [{"id": i, "text": f"{DOC} {i}", "abstract": f"Grants {i}.", "headline": f"T{i}"}
            for i in range(5)]  # fmt: skip
    rows[3]["abstract"] = None
    path = write_jsonl(tmp_path / "bills.jsonl", rows)
    source = open_source(path)
    assert source.kind == "jsonl" and source.columns == ["id", "text", "abstract", "headline"]
    assert source.mapping == ColumnMap("text", "abstract", "headline")
    batches = list(source.batches(batch_size=2))
    assert [len(records) for records, _ in batches] == [2, 2, 1]
    assert [done for _, done in batches][-1] == source.total == path.stat().st_size
    first = batches[0][0][0]
    assert first == Record(f"{DOC} 0", "Grants 0.", "T0", "bills.jsonl:1")
    assert batches[1][0][1].summary is None and batches[1][0][1].ref == "bills.jsonl:4"


def test_jsonl_accepts_bom_blank_lines_and_gzip(tmp_path):
    lines = [json.dumps({"document": DOC, "summary": "S."}), "", json.dumps({"document": "B"})]
    path = tmp_path / "a.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + "\n".join(lines).encode() + b"\n")
    assert [r.ref for r in read_all(open_source(path))] == ["a.jsonl:1", "a.jsonl:3"]
    packed = tmp_path / "a.jsonl.gz"
    packed.write_bytes(gzip.compress(path.read_bytes()))
    source = open_source(packed)
    assert [r.summary for r in read_all(source)] == ["S.", None]
    assert source.total == packed.stat().st_size
    (tmp_path / "bad.jsonl.gz").write_bytes(path.read_bytes())
    with pytest.raises(ImportProblem, match="bad.jsonl.gz is not a complete gzip file"):
        open_source(tmp_path / "bad.jsonl.gz")


def test_jsonl_override_mapping_is_case_insensitive_and_blank_fields_are_detected(tmp_path):
    path = write_jsonl(tmp_path / "a.jsonl", [{"judgment": DOC, "summary": "S.", "name": "N"}])
    source = open_source(path, ColumnMap("JUDGMENT"))
    assert source.mapping == ColumnMap("judgment", "summary", "name")
    assert read_all(source) == [Record(DOC, "S.", "N", "a.jsonl:1")]
    with pytest.raises(ImportProblem, match=r"no column 'verdict' .*judgment, summary, name"):
        open_source(path, ColumnMap("verdict"))


def test_malformed_json_line_names_line_and_column_or_is_skipped(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text(json.dumps({"text": DOC}) + '\n{"text": "x",,}\n' + json.dumps({"text": "B"}))
    with pytest.raises(ImportProblem, match=r"a\.jsonl, line 2: malformed JSON at column 14"):
        read_all(open_source(path))
    source = open_source(path, skip_bad_rows=True)
    assert [r.document for r in read_all(source)] == [DOC, "B"]
    assert source.skipped[0][0] == "a.jsonl:2" and "malformed JSON" in source.skipped[0][1]


def test_jsonl_row_with_missing_empty_or_non_text_document(tmp_path):
    rows = [{"text": DOC}, {"title": "no text"}, {"text": "  "}, {"text": 42}, {"text": "ok"}]
    path = write_jsonl(tmp_path / "a.jsonl", rows)
    with pytest.raises(ImportProblem, match=r"line 2: column 'text': the document is missing"):
        read_all(open_source(path))
    source = open_source(path, skip_bad_rows=True)
    assert [r.document for r in read_all(source)] == [DOC, "ok"]
    reasons = dict(source.skipped)
    assert reasons["a.jsonl:3"] == "column 'text': the document is empty"
    assert "a number (42), not text" in reasons["a.jsonl:4"]


def test_numeric_summaries_are_refused_not_converted(tmp_path):
    path = write_jsonl(tmp_path / "a.jsonl", [{"text": DOC, "summary": "Fine."}] * 100 + [
        {"text": DOC, "summary": 3}])  # fmt: skip
    with pytest.raises(ImportProblem, match=r"line 101: column 'summary': the summary is a number"):
        read_all(open_source(path))
    numbers = write_jsonl(tmp_path / "b.jsonl", [{"text": DOC, "summary": 1.5}])
    with pytest.raises(ImportProblem, match="column 'summary': holds number values, not text"):
        open_source(numbers, ColumnMap("text", "summary"))


def test_a_list_summary_is_refused_up_front_unless_mapped_to_none(tmp_path):
    path = write_jsonl(tmp_path / "a.jsonl", [{"text": DOC, "summary": ["One.", "Two."]}])
    with pytest.raises(ImportProblem, match="column 'summary': holds list values.*or none"):
        open_source(path)
    source = open_source(path, ColumnMap("text", summary=""))
    assert read_all(source) == [Record(DOC, None, None, "a.jsonl:1")]


def test_jsonl_not_utf8_names_line_and_byte_offset(tmp_path):
    path = tmp_path / "a.jsonl"
    first = json.dumps({"text": DOC}).encode() + b"\n"
    path.write_bytes(first + '{"text": "café"}\n'.encode("latin-1"))
    with pytest.raises(ImportProblem, match="line 2, column 14") as e:
        read_all(open_source(path))
    assert f"byte offset {len(first) + 13}" in str(e.value) and "UTF-8" in str(e.value)
    utf16 = tmp_path / "b.jsonl"  # UTF-16 with a byte-order mark is decoded
    utf16.write_text(json.dumps({"text": DOC}), encoding="utf-16")
    assert [r.document for r in read_all(open_source(utf16))] == [DOC]


def test_empty_file_array_and_non_object_lines(tmp_path):
    (tmp_path / "e.jsonl").write_text("\n  \n")
    with pytest.raises(ImportProblem, match="e.jsonl has no rows"):
        open_source(tmp_path / "e.jsonl")
    (tmp_path / "arr.json").write_text(json.dumps([{"text": DOC}], indent=1))
    with pytest.raises(ImportProblem, match=r"JSON array .* jq -c '\.\[\]' arr\.json"):
        open_source(tmp_path / "arr.json")
    (tmp_path / "s.jsonl").write_text('"just text"\n[1, 2]\n')
    with pytest.raises(ImportProblem, match="line 1: a JSON str, not an object"):
        open_source(tmp_path / "s.jsonl")


# --- CSV and TSV ---------------------------------------------------------------------------
def test_csv_streams_quoted_multiline_and_huge_fields(tmp_path):
    long_doc = "word " * 60_000  # over the csv module's default 128 KiB field limit
    path = write_csv(
        tmp_path / "a.csv",
        [["Body", "Summary"], [f"{DOC}\nSEC. 2, with a comma.", "Grants."], [long_doc, ""]],
    )
    source = open_source(path)
    assert source.kind == "csv" and source.mapping == ColumnMap("Body", "Summary")
    records = read_all(source)
    assert records[0].document.endswith("SEC. 2, with a comma.") and records[0].ref == "a.csv:2"
    assert records[1] == Record(long_doc, None, None, "a.csv:4")  # the row after a 2-line one


def test_tsv_by_extension_with_override_mapping(tmp_path):
    path = write_csv(tmp_path / "a.tsv", [["a", "b"], [DOC, "S, with comma."]], delimiter="\t")
    assert read_all(open_source(path, ColumnMap("a", "b"))) == [
        Record(DOC, "S, with comma.", None, "a.tsv:2")
    ]


def test_csv_bad_rows_name_their_line(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text(f'text,summary\n{DOC},ok\nx,y,z\n,missing\n"{DOC}",7\n')
    with pytest.raises(ImportProblem, match="a.csv, line 3: 3 fields but the header has 2"):
        read_all(open_source(path))
    source = open_source(path, skip_bad_rows=True)
    assert len(read_all(source)) == 1
    assert [ref for ref, _ in source.skipped] == ["a.csv:3", "a.csv:4", "a.csv:5"]
    assert "the summary is a number (7)" in source.skipped[2][1]


def test_csv_unclosed_quote_encoding_header_only_and_empty(tmp_path):
    (tmp_path / "q.csv").write_text(f'text,summary\n{DOC},ok\n"never closed,x\nmore\n')
    with pytest.raises(ImportProblem, match=r"q.csv, line 3: malformed CSV .*double quotes"):
        read_all(open_source(tmp_path / "q.csv"))
    (tmp_path / "l.csv").write_bytes(b"text\n" + "Zoë\n".encode("cp1252"))
    with pytest.raises(ImportProblem, match=r"l.csv, line 2, column 3 \(byte offset 7\)"):
        open_source(tmp_path / "l.csv")
    (tmp_path / "h.csv").write_text("text,summary\n")
    with pytest.raises(ImportProblem, match=r"h.csv has a header \(text, summary\) but no rows"):
        open_source(tmp_path / "h.csv")
    (tmp_path / "e.csv").write_text("")
    with pytest.raises(ImportProblem, match="e.csv has no rows"):
        open_source(tmp_path / "e.csv")
    write_csv(tmp_path / "c.csv", [["id", "score"], ["1", "2"]])
    with pytest.raises(ImportProblem, match=r"c.csv: no document column \(columns found: id"):
        open_source(tmp_path / "c.csv")


# --- Parquet -------------------------------------------------------------------------------
def test_parquet_streams_row_batches(tmp_path):
    path = tmp_path / "a.parquet"
    n = 2500
    table = pa.table({"id": range(n), "article": [f"{DOC} {i}" for i in range(n)],
                      "highlights": [f"S{i}." for i in range(n)]})  # fmt: skip
    table = table.set_column(1, "article", table["article"].dictionary_encode())
    pq.write_table(table, path, row_group_size=1000)
    source = open_source(path)
    assert source.kind == "parquet" and source.total == n
    assert source.mapping == ColumnMap("article", "highlights")
    batches = list(source.batches(batch_size=1000))
    assert [(len(r), done) for r, done in batches] == [(1000, 1000), (1000, 2000), (500, 2500)]
    assert batches[2][0][-1] == Record(f"{DOC} {n - 1}", f"S{n - 1}.", None, f"a.parquet:{n - 1}")


def test_parquet_types_are_checked_up_front_and_null_documents_named(tmp_path):
    path = tmp_path / "a.parquet"
    pq.write_table(pa.table({"text": [DOC, None], "label": [1, 0], "gist": ["G.", "H."]}), path)
    assert open_source(path).mapping == ColumnMap("text", None, None)  # the numeric label
    with pytest.raises(ImportProblem, match="column 'label': holds number values, not text"):
        open_source(path, ColumnMap("text", "label"))
    with pytest.raises(ImportProblem, match="column 'label': holds number values"):
        open_source(path, ColumnMap("label"))
    with pytest.raises(ImportProblem, match="a.parquet, row index 1: column 'text'.* missing"):
        read_all(open_source(path, ColumnMap("text", "gist")))
    pq.write_table(pa.table({"text": pa.array([], pa.string())}), tmp_path / "e.parquet")
    with pytest.raises(ImportProblem, match="e.parquet has no rows"):
        open_source(tmp_path / "e.parquet")
    (tmp_path / "bad.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(ImportProblem, match="bad.parquet is not a readable Parquet file"):
        open_source(tmp_path / "bad.parquet")


# --- a folder of documents -----------------------------------------------------------------
def test_folder_of_txt_md_and_pdf(tmp_path):
    folder = tmp_path / "cases"
    (folder / "sub").mkdir(parents=True)
    (folder / "b_note.txt").write_text("A plain note.", encoding="utf-8")
    (folder / "sub" / "c.md").write_bytes(b"\xef\xbb\xbf# Heading\nBody.")
    write_pdf(folder / "a.pdf", [["CITY COUNCIL", "Budget approved."], ["CITY COUNCIL", "Closed."]])
    (folder / "notes.docx").write_bytes(b"PK")
    (folder / ".DS_Store").write_bytes(b"\0")
    source = open_source(folder)
    assert source.kind == "folder" and source.total == 3
    records = read_all(source)
    assert [(r.ref, r.title, r.summary) for r in records] == [
        ("cases/a.pdf", "a", None),
        ("cases/b_note.txt", "b_note", None),
        ("cases/sub/c.md", "c", None),
    ]
    assert records[0].document == "CITY COUNCIL\nBudget approved.\fCITY COUNCIL\nClosed."
    assert records[2].document == "# Heading\nBody."
    assert source.skipped == [("cases/notes.docx", "not a .txt, .md or .pdf file, so not imported")]


def test_single_document_file(tmp_path):
    path = write_pdf(tmp_path / "report.pdf", [["Only page."]])
    assert read_all(open_source(path)) == [Record("Only page.", None, "report", "report.pdf")]


def test_folder_bad_files_are_named_and_skippable(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    write_pdf(folder / "scan.pdf", [[], []])
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4 truncated")
    (folder / "latin.txt").write_bytes("ok\ncafé".encode("latin-1"))
    (folder / "empty.md").write_text(" \n")
    (folder / "good.txt").write_text(DOC)
    with pytest.raises(ImportProblem, match="docs/broken.pdf: could not be read as a PDF"):
        read_all(open_source(folder))
    source = open_source(folder, skip_bad_rows=True)
    assert [r.ref for r in read_all(source)] == ["docs/good.txt"]
    reasons = dict(source.skipped)
    assert "no extractable text in its 2 page(s)" in reasons["docs/scan.pdf"]
    assert reasons["docs/latin.txt"] == "line 2 (byte offset 6): byte 0xe9 is not UTF-8"
    assert reasons["docs/empty.md"] == "the file is empty"
    with pytest.raises(ImportProblem, match="OCR"):
        read_all(open_source(folder / "scan.pdf"))


def test_folder_without_documents(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "a.csv").write_text("text\nhi\n")
    with pytest.raises(ImportProblem, match=r"x holds no .txt, .md or .pdf files \(found: a.csv\)"):
        open_source(tmp_path / "x")


# --- Hugging Face datasets -----------------------------------------------------------------
def test_hf_dataset_saved_to_disk_loads_by_path(tmp_path):
    from datasets import Dataset, DatasetDict

    data = {"text": [DOC, "Second."], "summary": ["S1.", "S2."], "label": [0, 1]}
    Dataset.from_dict(data).save_to_disk(tmp_path / "billsum")
    source = open_source(tmp_path / "billsum")
    assert source.kind == "hf" and source.total == 2
    assert source.mapping == ColumnMap("text", "summary")
    assert read_all(source)[1] == Record("Second.", "S2.", None, "hf:billsum:1")
    with pytest.raises(ImportProblem, match="column 'label': holds number values"):
        open_source(tmp_path / "billsum", ColumnMap("text", "label"))

    splits = DatasetDict(train=Dataset.from_dict(data), test=Dataset.from_dict({"body": ["T."]}))
    splits.save_to_disk(tmp_path / "dd")
    test = open_source(tmp_path / "dd", hf_split="test")
    assert read_all(test) == [Record("T.", None, None, "hf:dd/test:0")]
    with pytest.raises(ImportProblem, match=r"dd has no split 'dev' \(splits: train, test\)"):
        open_source(tmp_path / "dd", hf_split="dev")


def test_hf_hub_name_that_cannot_be_reached(monkeypatch):
    import datasets

    calls = []

    def offline(name, split):
        calls.append((name, split))
        raise ConnectionError(f"Couldn't reach '{name}' on the Hub (LocalEntryNotFoundError)")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(ImportProblem, match="'FiscalNote/billsum' .split 'test'. could not be"):
        open_source("FiscalNote/billsum", hf_split="test")
    assert calls == [("FiscalNote/billsum", "test")]


# --- files that cannot be opened -----------------------------------------------------------
def test_missing_unsupported_and_too_large_files(tmp_path, monkeypatch):
    with pytest.raises(ImportProblem, match="No file or folder at '.*nope.jsonl'"):
        open_source(tmp_path / "nope.jsonl")
    (tmp_path / "a.xlsx").write_bytes(b"PK")
    with pytest.raises(ImportProblem, match=r"'\.xlsx' cannot be imported. Supported: \.jsonl"):
        open_source(tmp_path / "a.xlsx")
    path = write_jsonl(tmp_path / "big.jsonl", [{"text": DOC}] * 200)
    monkeypatch.setattr(sources, "MAX_BYTES", 10_000)
    with pytest.raises(
        ImportProblem, match=r"big.jsonl is [\d.]+ MB, over the [\d.]+ MB limit.*Split"
    ):
        open_source(path)


@pytest.mark.skipif(not CONGRESS_TRAIN.exists(), reason="needs ../shared/data/congress119")
def test_streams_the_congress_training_file():
    source = open_source(CONGRESS_TRAIN)
    records = read_all(source, batch_size=1000)
    assert len(records) == 3397 and all(r.summary for r in records)
    assert not source.skipped and records[-1].ref == "train.jsonl:3397"
