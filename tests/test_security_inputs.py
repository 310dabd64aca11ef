"""Hostile inputs and server-path import: who may import which path from the web app (the
console may import any path), and files built to crash or exhaust the importer (deep JSON, one
huge line, NULs, UTF-16 without a mark, upload names that climb out of the uploads folder).
Every refusal is checked against what landed in the store: nothing."""

import io
import json
import os
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

import pytest

from engine.data import readers
from engine.data.imports import import_file
from engine.data.opening import check_import_path, open_source
from engine.data.sources import ImportProblem
from engine.paths import IMPORT_DIRS_ENV, import_dirs, safe_file_name
from store import documents as docs
from store import examples as ex
from tests.conftest import write_jsonl

ADMIN = {"name": "ada", "role": "admin"}
REVIEWER = {"name": "rita", "role": "reviewer"}
DOC = "The claimant slipped on an unmarked wet floor in a supermarket and broke a wrist in 2023."
SECRET = "root:$6$very-secret-hash:19000:0:99999:7:::"


def stored_texts(con) -> list[str]:
    return [r[0] for r in con.execute("SELECT raw_text FROM documents ORDER BY ref").fetchall()]


def assert_nothing_stored(con, before: int = 0):
    assert docs.count_documents(con) == before and ex.count_examples(con) == before


@pytest.fixture
def imports(home) -> Path:
    """The data folder's import folder, where the web app may import from."""
    return import_dirs()[0]


@pytest.fixture
def outside(tmp_path) -> Path:
    """A secret file outside every import folder (tmp_path holds the data folder, not in it)."""
    return write_jsonl(tmp_path / "secret.jsonl", [{"text": SECRET}])


# --- who may import what by path -----------------------------------------------------------
def test_import_folder_defaults_to_data_imports_and_is_created(home, con, monkeypatch):
    dirs = import_dirs()
    assert dirs[0] == (home / "imports").resolve() and dirs[0].is_dir()
    assert (home / "uploads").resolve() in dirs
    hidden_home = home.parent / ".tuneloop"  # the default data folder, ~/.tuneloop, is hidden
    monkeypatch.setenv("TUNELOOP_HOME", str(hidden_home))
    path = write_jsonl(import_dirs()[0] / "cases.jsonl", [{"text": DOC}])
    assert import_file(con, path, user=ADMIN).n_new_documents == 1


def test_admin_imports_from_the_import_folder_by_path_or_name(con, imports):
    write_jsonl(imports / "cases.jsonl", [{"text": DOC, "summary": "A wrist broken."}])
    assert import_file(con, imports / "cases.jsonl", user=ADMIN).n_new_documents == 1
    write_jsonl(imports / "more.jsonl", [{"text": DOC + " Again."}])
    assert import_file(con, "more.jsonl", user=ADMIN).n_new_documents == 1  # looked up there
    assert stored_texts(con) == [DOC, DOC + " Again."]


def test_reviewer_cannot_import_by_path_or_dataset_name(con, imports):
    path = write_jsonl(imports / "cases.jsonl", [{"text": DOC}])
    for target in (path, str(path), "cases.jsonl", "/etc/passwd", "FiscalNote/billsum"):
        with pytest.raises(ImportProblem, match="cannot import by path") as e:
            import_file(con, target, user=REVIEWER)
        assert "passwd" not in str(e.value)
    with pytest.raises(ImportProblem, match="cannot import by path"):
        import_file(con, path, user=None)  # nobody signed in is not the console
    assert_nothing_stored(con)


def test_admin_outside_the_import_folders_gets_one_message_that_leaks_nothing(
    con, imports, outside, tmp_path
):
    (tmp_path / "folder").mkdir()
    messages = set()
    for target in (outside, tmp_path / "missing.jsonl", tmp_path / "folder", "/etc",
                   "/etc/passwd", "/etc/no-such-file", "/proc/self/environ", "~/.ssh/id_rsa",
                   "../secret.jsonl", "../../secret.jsonl"):  # fmt: skip
        with pytest.raises(ImportProblem) as e:
            import_file(con, target, user=ADMIN)
        messages.add(str(e.value))
    assert len(messages) == 1  # existing or not, file or folder: the same words
    message = messages.pop()
    assert message.startswith("Import by path reads only from the import folders: ")
    assert str(imports) in message and str(imports.parent / "uploads") in message
    assert "secret" not in message and "passwd" not in message and SECRET not in message
    with pytest.raises(ImportProblem, match=f"No file or folder at '{imports}/secret.jsonl'"):
        import_file(con, "secret.jsonl", user=ADMIN)  # a bare name is looked for in imports/
    assert_nothing_stored(con)


def test_dot_dot_and_symlinks_cannot_escape(con, imports, outside, tmp_path):
    climb = imports / ".." / ".." / outside.name
    assert climb.resolve() == outside.resolve()
    with pytest.raises(ImportProblem, match="reads only from the import folders"):
        import_file(con, climb, user=ADMIN)
    write_jsonl(imports / "fine.jsonl", [{"text": DOC}])
    with pytest.raises(ImportProblem, match="reads only from the import folders"):
        import_file(con, imports / "sub" / ".." / "fine.jsonl", user=ADMIN)  # `..` at all
    (imports / "link.jsonl").symlink_to(outside)
    (tmp_path / "elsewhere").mkdir()
    write_jsonl(tmp_path / "elsewhere" / "a.jsonl", [{"text": SECRET}])
    (imports / "linked-folder").symlink_to(tmp_path / "elsewhere")
    for target in ("link.jsonl", imports / "link.jsonl", imports / "linked-folder",
                   imports / "linked-folder" / "a.jsonl"):  # fmt: skip
        with pytest.raises(ImportProblem, match="reads only from the import folders"):
            import_file(con, target, user=ADMIN)
    assert_nothing_stored(con)


def test_folder_import_leaves_out_links_to_outside(con, imports, tmp_path):
    (tmp_path / "secret.txt").write_text(SECRET)
    folder = imports / "letters"
    folder.mkdir()
    (folder / "a.txt").write_text(DOC)
    (folder / "leak.txt").symlink_to(tmp_path / "secret.txt")
    report = import_file(con, folder, user=ADMIN)
    assert stored_texts(con) == [DOC]
    assert ("letters/leak.txt", "a link to outside the import folders, so not imported") in (
        report.skipped
    )
    assert import_file(con, folder / "a.txt").n_read == 1  # the console reads any path


def test_hidden_paths_are_refused(con, imports):
    (imports / ".git").mkdir()
    write_jsonl(imports / ".git" / "a.jsonl", [{"text": DOC}])
    write_jsonl(imports / ".env.jsonl", [{"text": DOC}])
    (imports / "shown.jsonl").symlink_to(imports / ".env.jsonl")
    for target in (imports / ".git" / "a.jsonl", ".env.jsonl", imports / ".git",
                   imports / "shown.jsonl"):  # fmt: skip
        with pytest.raises(ImportProblem, match="reads only from the import folders"):
            import_file(con, target, user=ADMIN)
    assert_nothing_stored(con)


def test_more_import_folders_from_the_environment_but_never_system_or_hidden(
    con, home, tmp_path, monkeypatch
):
    extra, hidden = tmp_path / "corpus", tmp_path / ".cache"
    extra.mkdir(), hidden.mkdir()
    paths = [str(extra), "/etc", "/", "/usr/share", str(hidden), "relative/dir"]
    monkeypatch.setenv(IMPORT_DIRS_ENV, os.pathsep.join(paths))
    assert import_dirs()[2:] == [extra.resolve()]
    path = write_jsonl(extra / "bills.jsonl", [{"text": DOC}])
    assert import_file(con, path, user=ADMIN).n_new_documents == 1
    with pytest.raises(ImportProblem, match="reads only from the import folders"):
        import_file(con, "/etc/hostname", user=ADMIN)


def test_hub_dataset_names_stay_allowed_for_admins_only(home, imports):
    assert check_import_path("FiscalNote/billsum", ADMIN) == "FiscalNote/billsum"
    with pytest.raises(ImportProblem, match="cannot import by path"):
        check_import_path("FiscalNote/billsum", REVIEWER)
    with pytest.raises(ImportProblem, match="reads only from the import folders"):
        check_import_path("billsum/../../etc", ADMIN)


def test_saved_dataset_naming_files_outside_its_folder_is_refused(con, imports, tmp_path):
    (tmp_path / "data.arrow").write_bytes(b"not arrow")
    folder = imports / "crafted"
    folder.mkdir()
    (folder / "dataset_info.json").write_text("{}")
    state = {"_data_files": [{"filename": "../../../data.arrow"}]}
    (folder / "state.json").write_text(json.dumps(state))
    with pytest.raises(ImportProblem, match="names files outside its folder"):
        import_file(con, folder, user=ADMIN)
    assert_nothing_stored(con)


# --- uploads ---------------------------------------------------------------------------------
@dataclass
class Upload:  # what st.file_uploader hands over, as far as _save_uploads uses it
    name: str
    data: bytes

    def getbuffer(self):
        return memoryview(self.data)


def test_upload_names_are_sanitized():
    assert safe_file_name("../../etc/passwd") == "passwd"
    assert safe_file_name("..\\..\\Windows\\win.ini") == "win.ini"
    assert safe_file_name(".bashrc") == "bashrc"
    assert safe_file_name("Fälle (2024).jsonl.gz") == "Falle_2024.jsonl.gz"
    assert safe_file_name("..") == "upload"
    long = safe_file_name("x" * 500 + ".csv")
    assert len(long) == 100 and long.endswith(".csv")


def test_uploads_never_overwrite_each_other_and_reviewers_import_them(con, home):
    from ui.data_tabs import _save_uploads

    rows = [json.dumps({"text": f"{DOC} Upload {i}."}).encode() + b"\n" for i in range(3)]
    first = _save_uploads([Upload("../../etc/passwd.jsonl", rows[0])])
    second = _save_uploads([Upload("../../etc/passwd.jsonl", rows[1])])
    uploads = (home / "uploads").resolve()
    assert first != second and first.name == second.name == "passwd.jsonl"
    assert first.parent.parent == second.parent.parent == uploads
    assert first.read_bytes() == rows[0] and second.read_bytes() == rows[1]
    both = _save_uploads([Upload("a/same.txt", b"one"), Upload("b/same.txt", b"two")])
    assert sorted(p.read_text() for p in both.iterdir()) == ["one", "two"]
    assert import_file(con, first, user=REVIEWER).n_new_documents == 1
    assert import_file(con, second, user=REVIEWER).n_new_documents == 1
    assert import_file(con, both, user=REVIEWER).n_new_documents == 2


# --- hostile content -------------------------------------------------------------------------
def deep(levels: int):
    return json.loads("[" * levels + "]" * levels)


def test_deeply_nested_json_is_a_bad_row_with_its_line(con, tmp_path):
    import_file(con, write_jsonl(tmp_path / "good.jsonl", [{"text": DOC}]))
    path = tmp_path / "deep.jsonl"
    nested = '{"text": "x", "meta": ' + "[" * 10_000 + "]" * 10_000 + "}"
    path.write_text(json.dumps({"text": DOC + " Two."}) + "\n" + nested + "\n")
    with pytest.raises(ImportProblem, match=r"deep.jsonl, line 2: JSON values nested more than"):
        import_file(con, path)
    assert_nothing_stored(con, before=1)
    report = import_file(con, path, skip_bad_rows=True)
    assert report.n_new_documents == 1 and [r for r, _ in report.skipped] == ["deep.jsonl:2"]
    ok, too_deep = {"text": DOC, "m": deep(31)}, {"text": DOC, "m": deep(32)}
    assert readers._jsonl_row(json.dumps(ok), "r", "w", 10**6) == ok  # 32 levels with the row
    assert "nested" in readers._jsonl_row(json.dumps(too_deep), "r", "w", 10**6).reason


def test_a_number_too_long_to_parse_is_a_bad_row(con, tmp_path):
    path = tmp_path / "n.jsonl"
    path.write_text(json.dumps({"text": DOC}) + '\n{"text": "x", "id": ' + "9" * 5000 + "}\n")
    with pytest.raises(ImportProblem, match="n.jsonl, line 2: malformed JSON"):
        import_file(con, path)
    assert_nothing_stored(con)


class SpyFile(io.BufferedReader):
    """A file opened for reading that records the longest line readline hands back."""

    longest = 0

    def __init__(self, path, mode="rb"):
        super().__init__(io.FileIO(path, mode))

    def readline(self, size=-1):
        line = super().readline(size)
        SpyFile.longest = max(SpyFile.longest, len(line))
        return line


def test_a_line_over_the_limit_is_refused_without_reading_it_whole(con, tmp_path, monkeypatch):
    monkeypatch.setenv("TUNELOOP_MAX_DOCUMENT_BYTES", "10000")
    monkeypatch.setattr(readers, "SKIP_CHUNK", 4096)
    monkeypatch.setattr(readers, "open", lambda p, mode: SpyFile(p, mode), raising=False)
    import_file(con, write_jsonl(tmp_path / "good.jsonl", [{"text": DOC}]))
    path = tmp_path / "huge.jsonl"
    huge = json.dumps({"text": "word " * 1_000_000})  # 5 MB on one line
    path.write_text(json.dumps({"text": DOC + " Two."}) + "\n" + huge + "\n")
    SpyFile.longest = 0
    with pytest.raises(ImportProblem, match=r"huge.jsonl, line 2: the line is over the 9.8 KB"):
        import_file(con, path)
    assert 0 < SpyFile.longest <= 10_001  # never a read of the whole 5 MB line
    assert_nothing_stored(con, before=1)
    report = import_file(con, path, skip_bad_rows=True)
    assert report.n_new_documents == 1 and report.skipped[0][0] == "huge.jsonl:2"


def test_memory_stays_bounded_for_a_50_mb_line(tmp_path, monkeypatch):
    path = tmp_path / "one-line.jsonl"
    with open(path, "w") as f:
        f.write(json.dumps({"text": DOC}) + "\n")
        f.write('{"text": "' + "x" * (50 * 2**20) + '"}\n')
    tracemalloc.start()
    try:
        source = open_source(path, skip_bad_rows=True)
        records = [r for batch, _ in source.batches() for r in batch]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [r.document for r in records] == [DOC] and source.skipped[0][0] == "one-line.jsonl:2"
    assert peak < 8 * 2**20  # the 2 MB default limit, plus change: never the 50 MB line


def test_a_bad_document_limit_setting_is_explained(con, tmp_path, monkeypatch):
    monkeypatch.setenv("TUNELOOP_MAX_DOCUMENT_BYTES", "2MB")
    with pytest.raises(ImportProblem, match="TUNELOOP_MAX_DOCUMENT_BYTES must be a whole number"):
        import_file(con, write_jsonl(tmp_path / "a.jsonl", [{"text": DOC}]))


def test_csv_records_over_the_limit(con, tmp_path, monkeypatch):
    monkeypatch.setenv("TUNELOOP_MAX_DOCUMENT_BYTES", "10000")
    path = tmp_path / "big.csv"
    path.write_text(f"text,summary\n{DOC},short\n{'word ' * 5000},long\n{DOC} Three.,s\n")
    with pytest.raises(ImportProblem, match="big.csv, line 3: the line is over"):
        import_file(con, path)
    assert_nothing_stored(con)
    report = import_file(con, path, skip_bad_rows=True)
    assert report.n_new_documents == 2 and report.skipped[0][0] == "big.csv:3"
    unclosed = tmp_path / "unclosed.csv"  # a quote never closed swallows the rest of the file
    unclosed.write_text(f'text,summary\n{DOC},s\n"{DOC}' + f",s\n{DOC}" * 200 + "\n")
    with pytest.raises(ImportProblem, match="unclosed.csv, line 3: the record that starts"):
        import_file(con, unclosed, skip_bad_rows=True)
    assert docs.count_documents(con) == 2


def test_a_text_file_over_the_limit_is_a_bad_row(con, tmp_path, monkeypatch):
    monkeypatch.setenv("TUNELOOP_MAX_DOCUMENT_BYTES", "10000")
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text(DOC)
    (folder / "b.txt").write_text("word " * 5000)
    with pytest.raises(ImportProblem, match="docs/b.txt: the file is over"):
        import_file(con, folder)
    assert_nothing_stored(con)
    assert import_file(con, folder, skip_bad_rows=True).n_new_documents == 1


def test_nul_characters_are_dropped(con, tmp_path):
    write_jsonl(tmp_path / "a.jsonl", [{"text": "Escaped\u0000 NUL. " + DOC, "title": "T\u0000"}])
    (tmp_path / "b.csv").write_bytes(b"text,summary\nRaw\x00 NUL. " + DOC.encode() + b",s\x00\n")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "c.txt").write_bytes(b"File\x00 NUL. " + DOC.encode())
    for name in ("a.jsonl", "b.csv", "docs"):
        import_file(con, tmp_path / name)
    texts = stored_texts(con)
    assert texts == [f"Escaped NUL. {DOC}", f"Raw NUL. {DOC}", f"File NUL. {DOC}"]
    rows = con.execute("SELECT title FROM documents UNION ALL SELECT summary FROM examples")
    assert not any("\x00" in (v or "") for (v,) in rows.fetchall())


def test_utf16_without_a_byte_order_mark_is_decoded(con, tmp_path):
    rows = [
        {"text": DOC, "summary": "Ein Handgelenk gebrochen: 1.200 €."},
        {"text": "Zweites. " + DOC},
    ]
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    (tmp_path / "le.jsonl").write_bytes(lines.encode("utf-16-le"))
    assert readers.sniff_encoding(lines.encode("utf-16-le")[:1024]) == "utf-16-le"
    report = import_file(con, tmp_path / "le.jsonl")
    assert report.n_new_documents == 2 and not report.skipped
    assert ex.count_examples(con, ex.ExampleFilter(has_summary=True)) == 1
    summary = con.execute("SELECT summary FROM examples WHERE summary IS NOT NULL").fetchone()
    assert summary == ("Ein Handgelenk gebrochen: 1.200 €.",)
    (tmp_path / "be.csv").write_bytes(f"text\n{DOC} Drei.\n".encode("utf-16-be"))
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "le.txt").write_bytes(f"{DOC} Vier.".encode("utf-16-le"))
    import_file(con, tmp_path / "be.csv")
    import_file(con, tmp_path / "docs")
    assert {f"{DOC} Drei.", f"{DOC} Vier."} <= set(stored_texts(con))
    # UTF-8 with a stray NUL is still UTF-8
    assert readers.sniff_encoding(b'{"text": "a\x00b"}\n' * 20) == "utf-8"


# --- the Import tab --------------------------------------------------------------------------
def data_page(user: dict):
    from tests.conftest import signed_in_app

    return signed_in_app(user["name"], user["role"], "pages/data.py")


def test_import_tab_shows_the_path_box_to_admins_only_and_explains_refusals(home, outside):
    reviewer = data_page(REVIEWER)
    assert not reviewer.exception, reviewer.exception
    assert "data_import_path" not in [t.key for t in reviewer.text_input]
    admin = data_page(ADMIN)
    assert not admin.exception, admin.exception
    admin.text_input(key="data_import_path").input(str(outside)).run()
    admin.button(key="data_import").click().run()
    assert not admin.exception, admin.exception
    assert admin.error[0].value.startswith("Nothing was imported. Import by path reads only")
    write_jsonl(import_dirs()[0] / "cases.jsonl", [{"text": DOC}])
    admin.text_input(key="data_import_path").input("cases.jsonl").run()
    admin.button(key="data_import").click().run()
    assert "1 new documents" in admin.success[0].value
