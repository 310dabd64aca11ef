"""A CSV file without a header row is no longer imported silently wrong (issue 18, from the
walk): the Import tab previews the first rows and the columns it will use, warns when the first
line looks like data, and imports it with "No header row" (columns col1…colN). Refused uploads
leave nothing under uploads/, and uploads are listed by their file's name."""

from __future__ import annotations

import pytest

from engine.data.imports import import_file
from engine.data.opening import preview_csv
from engine.data.sources import ColumnMap, header_warning
from engine.paths import uploads_dir

ROWS = [
    (f"The committee considered bill {i}, which funds roads and bridges across the state.",
     f"Bill {i} funds roads.")
    for i in range(10)
]  # fmt: skip


def headless_csv(tmp_path):
    path = tmp_path / "bills.csv"
    path.write_text("".join(f'"{d}","{s}"\n' for d, s in ROWS), encoding="utf-8")
    return path


def test_a_header_that_looks_like_data_is_named():
    assert header_warning(["document", "summary"], [["A long text " * 9, "Short."]]) is None
    assert header_warning(["id", "body text"], [["1", "Some words."]]) is None
    first = ROWS[0]
    warning = header_warning(list(first), [list(r) for r in ROWS[1:]])
    assert warning.startswith("The first line looks like data, not column names: its column 1")
    assert "No header row" in warning
    # Short names, values as long as the names: a header of unknown names, no warning.
    assert header_warning(["a", "b"], [["x", "y"]]) is None


def test_the_preview_shows_the_rows_and_columns_an_import_will_use(tmp_path):
    path = headless_csv(tmp_path)
    with_header = preview_csv(path)
    assert with_header.columns == list(ROWS[0]) and with_header.rows[0] == list(ROWS[1])
    assert with_header.mapping is None and "no document column" in with_header.problem
    assert with_header.warning.startswith("The first line looks like data")
    without = preview_csv(path, header=False)
    assert without.columns == ["col1", "col2"] and without.rows[0] == list(ROWS[0])
    assert without.mapping == ColumnMap("col1", "col2", None)  # the longest values: document
    assert without.warning is None and len(without.rows) == 5
    chosen = preview_csv(path, ColumnMap("col2", "", ""), header=False)
    assert chosen.mapping == ColumnMap("col2", None, None)


def test_a_headless_csv_imports_every_row_with_its_summary(con, tmp_path):
    path = headless_csv(tmp_path)
    report = import_file(con, path, ColumnMap("col1", "col2"), header=False)
    assert report.n_read == 10 and report.n_new_examples == 10
    stored = con.execute(
        "SELECT d.raw_text, e.summary FROM examples e JOIN documents d ON d.id = e.document_id "
        "ORDER BY d.raw_text"
    ).fetchall()
    assert sorted(stored) == sorted(ROWS)


def shown(markdown: str) -> str:
    """Text as the page shows it (ui.text.plain escapes Markdown with backslashes)."""
    return markdown.replace("\\", "")


def data_page(home):
    from tests.conftest import signed_in_app

    return signed_in_app("ada", "admin", "pages/data.py")


def test_the_import_tab_warns_and_imports_without_a_header(home, tmp_path):
    import store
    from engine.paths import db_path

    at = data_page(home)
    content = headless_csv(tmp_path).read_bytes()
    at.file_uploader[0].upload("bills.csv", content, "text/csv").run()
    assert not at.exception, at.exception
    assert any(w.value.startswith("The first line looks like data") for w in at.warning)
    at.checkbox(key="data_no_header").check().run()
    assert at.selectbox(key="data_nh_doc").value == "col1"
    assert at.selectbox(key="data_nh_sum").value == "col2"
    assert any("Document column: **col1**" in c.value for c in at.caption)
    assert not at.warning
    at.button(key="data_import").click().run()
    assert not at.exception, at.exception
    assert "Read 10 rows from bills.csv" in shown(at.success[0].value)
    con = store.connect(db_path())
    stored = con.execute(
        "SELECT d.raw_text, e.summary FROM examples e JOIN documents d ON d.id = e.document_id "
        "WHERE e.source = 'bills.csv'"
    ).fetchall()
    assert sorted(stored) == sorted(ROWS)  # every row, the first one too, with its summary


def test_a_refused_upload_leaves_nothing_on_disk(home):
    at = data_page(home)
    before = {p for p in uploads_dir().rglob("*")}
    at.file_uploader[0].upload("broken.jsonl", b'{"text": "unclosed\n', "text/plain").run()
    at.button(key="data_import").click().run()
    assert not at.exception, at.exception
    assert at.error[0].value.startswith("Nothing was imported.")
    assert {p for p in uploads_dir().rglob("*")} == before


@pytest.mark.parametrize("n", [2, 5])
def test_an_upload_of_several_files_is_listed_by_their_names(home, n):
    at = data_page(home)
    files = [(f"note{i}.txt", f"Note {i} says the act funds bridges.".encode(), "text/plain")
             for i in range(n)]  # fmt: skip
    at.file_uploader[0].set_value(files).run()
    at.button(key="data_import").click().run()
    assert not at.exception, at.exception
    expected = ", ".join(f[0] for f in files[:3]) + (" and 2 more" if n == 5 else "")
    assert f"from {expected}:" in shown(at.success[0].value)
