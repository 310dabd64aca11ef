"""Uploads are bounded before they are read: a reviewer's 50 MB text in Chat is refused at
once, not tokenized for minutes (issue 18, high 3); engine/models/bounds.py holds the bounds.

    .venv/bin/python -m pytest -q tests/test_security_uploads.py          # the bounds
    .venv/bin/python -m pytest -q tests/test_security_uploads.py -m e2e   # the browser test
"""

from __future__ import annotations

import time

import pytest

from engine.models.bounds import InputBounds, folder_bounds, input_bounds
from tests.browser import App, add_users, data_folder, expect, go_to, register_production

MB = 1024 * 1024


def test_bounds_refuse_only_what_cannot_fit():
    bounds = input_bounds(100, ["a", "bcd", "<|im_start|>", "\u0120\u0120"])
    assert bounds == InputBounds(tokens=100, chars_per_token=12)
    assert (bounds.max_chars, bounds.max_bytes) == (1200, 4800)
    bounds.check_chars(1200)
    bounds.check_bytes(4800)
    with pytest.raises(ValueError, match="1,201 characters"):
        bounds.check_chars(1201)
    with pytest.raises(ValueError, match="100-token context"):
        bounds.check_bytes(4801)
    assert input_bounds(8192, ["x" * 81]).max_upload_mb == 3  # 8192 * 81 * 4 bytes = 2.5 MiB
    with pytest.raises(ValueError):
        input_bounds(0, ["a"])


def test_the_bounds_never_refuse_a_text_the_tokenizer_fits(tiny_model):
    """Sound: text built of the vocabulary's longest token, or of 4-byte characters, takes at
    least as many tokens as the bounds assume: nothing refused by them could have fitted."""
    from transformers import AutoTokenizer

    bounds = folder_bounds(tiny_model)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    assert bounds.tokens == 8192 and bounds.chars_per_token == max(map(len, tokenizer.get_vocab()))
    for text in ["\n" + " " * 80, "🙂", "Congress passed the act. " * 3]:
        n = len(tokenizer(text * 50, add_special_tokens=False)["input_ids"])
        assert n >= len(text * 50) / bounds.chars_per_token
        assert n >= len((text * 50).encode()) / 4 / bounds.chars_per_token
    assert folder_bounds(tiny_model / "missing") is None


@pytest.mark.e2e
def test_a_reviewers_huge_upload_in_chat_is_refused_at_once(browser, tmp_path, tiny_model):
    home = tmp_path / "home"
    with data_folder(home) as con:
        add_users(con, {"rita": "reviewer"})
        register_production(con, "tiny", tiny_model)
    huge = tmp_path / "huge.txt"
    huge.write_bytes(b"Congress passed the act. " * (50 * MB // 25))  # 50 MB of plain text
    long = tmp_path / "long.txt"  # under the widget's 3 MB, over the 8192-token context
    long.write_bytes(b"The committee met again. " * (2 * MB // 25))
    with App(home, browser) as app:
        page = app.log_in("rita")
        go_to(page, "Chat")
        page.get_by_text("Summarize a document").click()
        upload = page.locator("input[type=file]")

        began = time.monotonic()
        upload.set_input_files(str(huge))  # the widget refuses it: nothing reaches the script
        expect(page.get_by_text("File must be 3.0MB or smaller.")).to_be_visible()
        page.get_by_role("button", name="Summarize").click()
        expect(page.get_by_text("Give an example id, paste a document or upload")).to_be_visible()

        # A file the widget takes is still measured before it is tokenized.
        page.get_by_role("button", name="Remove huge.txt").click()
        upload.set_input_files(str(long))
        expect(page.get_by_text("long.txt")).to_be_visible()
        page.get_by_role("button", name="Summarize").click()
        expect(page.get_by_text("far more than the model's 8,192-token context")).to_be_visible()
        assert time.monotonic() - began < 60, "the refusals took too long"

        # The app still works: a short pasted document is summarized by the production model.
        page.get_by_role("button", name="Remove long.txt").click()
        page.get_by_role("textbox", name="…or paste a document").fill("The act funds bridges.")
        page.get_by_role("button", name="Summarize").click()
        expect(page.get_by_role("button", name="Correct this")).to_be_visible()  # stored, shown
    with data_folder(home) as con:
        roles = con.execute(
            "SELECT role, model_id FROM chat_messages WHERE username = 'rita' ORDER BY id"
        ).fetchall()
    assert roles == [("user", None), ("assistant", "tiny")]


# --- packed files are held to the limits of unpacked ones (issue 18, medium 5) ---------------
def test_a_parquet_cell_that_unpacks_too_far_is_refused_before_it_is_read(con, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from engine.data.imports import import_file
    from engine.data.sources import ImportProblem

    path = tmp_path / "bomb.parquet"  # one 30 MB cell, a few KB on disk
    table = pa.table({"text": ["x" * (30 * MB)], "summary": ["A summary."]})
    pq.write_table(table, path, compression="zstd")
    del table
    assert path.stat().st_size < 100_000
    before = pa.total_allocated_bytes()
    with pytest.raises(ImportProblem, match=r"bomb.parquet, column 'text': row group 0 unpacks"):
        import_file(con, path)
    assert pa.total_allocated_bytes() - before < MB  # the cell was never decoded
    assert con.execute("SELECT count(*) FROM documents").fetchone()[0] == 0


def test_parquet_over_the_row_or_unpacked_limits_is_refused(con, tmp_path, monkeypatch):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from engine.data import sources
    from engine.data.imports import import_file
    from engine.data.sources import ImportProblem

    path = tmp_path / "many.parquet"
    texts = [f"Document number {i}. " + "The act funds bridges. " * 40 for i in range(50)]
    pq.write_table(pa.table({"text": texts}), path, compression="zstd")  # 46 KB unpacked
    assert path.stat().st_size < 10_000
    monkeypatch.setattr(sources, "MAX_ROWS", 49)
    with pytest.raises(ImportProblem, match="many.parquet has more than 49 rows"):
        import_file(con, path)
    monkeypatch.setattr(sources, "MAX_ROWS", 50)
    monkeypatch.setattr(sources, "MAX_BYTES", 20_000)  # over the file, under its content
    with pytest.raises(ImportProblem, match="many.parquet unpacks to more than"):
        import_file(con, path)
    monkeypatch.setattr(sources, "MAX_BYTES", MB)
    assert import_file(con, path).n_new_documents == 50


def test_a_gzip_that_unpacks_too_far_is_refused_while_it_is_read(con, tmp_path, monkeypatch):
    import gzip
    import json

    from engine.data import sources
    from engine.data.imports import import_file
    from engine.data.sources import ImportProblem

    monkeypatch.setattr(sources, "MAX_BYTES", 4 * MB)
    path = tmp_path / "bomb.jsonl.gz"
    line = (json.dumps({"text": "The act funds bridges and roads."}) + "\n").encode()
    with gzip.open(path, "wb") as f:
        f.write(line * (5 * MB // len(line)))  # 5 MB unpacked, a few KB packed
    assert path.stat().st_size < 100_000
    with pytest.raises(ImportProblem, match=r"bomb.jsonl.gz unpacks to more than 4 MB"):
        import_file(con, path)
    one_line = tmp_path / "one-line.jsonl.gz"  # no newline at all: skipped in chunks, still capped
    with gzip.open(one_line, "wb") as f:
        f.write(b'{"text": "' + b"x" * (5 * MB))
    with pytest.raises(ImportProblem, match="one-line.jsonl.gz unpacks to more than"):
        import_file(con, one_line, skip_bad_rows=True)
    assert con.execute("SELECT count(*) FROM documents").fetchone()[0] == 0


def test_no_import_takes_more_than_max_rows(con, tmp_path, monkeypatch):
    import gzip
    import json

    from engine.data import sources
    from engine.data.imports import import_file
    from engine.data.sources import ImportProblem

    monkeypatch.setattr(sources, "MAX_ROWS", 100)
    path = tmp_path / "rows.jsonl.gz"
    with gzip.open(path, "wt") as f:
        f.writelines(json.dumps({"text": f"Document number {i}."}) + "\n" for i in range(101))
    with pytest.raises(ImportProblem, match="rows.jsonl.gz has more than 100 rows"):
        import_file(con, path)
    assert con.execute("SELECT count(*) FROM documents").fetchone()[0] == 0
    monkeypatch.setattr(sources, "MAX_ROWS", 101)
    assert import_file(con, path).n_new_documents == 101


# --- Chat summarizes with the settings of the model's own evaluation (issue 18, the walk) -----
def test_chat_starts_from_the_models_evaluation_settings(home):
    from dataclasses import asdict

    import store
    from engine.evaluation.runs import EVAL_SETTINGS
    from engine.models.generation import GenerationSettings
    from engine.paths import db_path
    from store import evals as evals_store
    from store import runs as runs_store
    from tests.conftest import signed_in_app

    at = signed_in_app("ada", "admin", "pages/chat.py")
    assert not at.exception, at.exception
    model = at.selectbox(key="chat_model").value
    shown = (at.number_input(key="chat_max_new").value, at.number_input(key="chat_rep").value)
    assert shown == (EVAL_SETTINGS.max_new_tokens, EVAL_SETTINGS.repetition_penalty)
    con = store.connect(db_path())
    evaluated = GenerationSettings(max_new_tokens=96, repetition_penalty=1.05)
    runs_store.add_run(con, "eval-1", "eval", "/nowhere", {}, "ada")
    runs_store.set_state(con, "eval-1", "succeeded")
    evals_store.add_evaluation(con, "eval-1", model, 1, 1, asdict(evaluated))
    at = signed_in_app("ada", "admin", "pages/chat.py")
    shown = (at.number_input(key="chat_max_new").value, at.number_input(key="chat_rep").value)
    assert shown == (96, 1.05)
