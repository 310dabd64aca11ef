"""The Home page and the loop checklist behind it (engine/overview.py): live counts on the sample
set, steps turning done as the store changes, admin-only links by role. Also the Chat page's
list of earlier chats, named by their first message and date."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

import store
from engine.auth import create_user, start_session
from engine.data.samples import load_sample_if_empty
from engine.overview import loop_status
from engine.paths import db_path
from store import duplicates as dup_store
from store import examples as ex
from tests.conftest import ROOT, write_jsonl

PASSWORD = "correct horse"


def open_store():
    return store.connect(db_path())  # same process: shares the app's database instance


@pytest.fixture
def sign_in(home):
    """Start the app on a fresh install (sample set loaded) signed in as a new user, through the
    session cookie the login form would have handed out (engine/auth.py, ui/login.py)."""

    def start(name: str, role: str) -> AppTest:
        con = open_store()
        create_user(con, name, PASSWORD, role)
        at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=120)
        at.session_state["login_cookie"] = start_session(con, name)
        at.run()
        assert not at.exception, at.exception
        assert at.session_state["user"] == {"name": name, "role": role}
        return at

    return start


def by_step(con) -> dict:
    return {s["step"]: s for s in loop_status(con)}


def test_loop_status_counts_the_sample_set(con):
    load_sample_if_empty(con)
    steps = by_step(con)
    assert list(steps) == [
        "Import", "Clean", "Dedupe", "Curate", "Label/Review",
        "Split", "Train", "Compare", "Promote",
    ]  # fmt: skip
    assert [s["id"] for s in steps.values()] == [
        "import", "clean", "dedupe", "curate", "label", "split", "train", "compare", "promote",
    ]  # fmt: skip
    # 44 rows; the two byte-identical copies (pi-021, pi-039) merge on import.
    assert steps["Import"]["counts"] == "42 documents" and steps["Import"]["done"]
    # Cleaning changes the 7 dirty rows (headers, hyphens, gutter, Unicode, blank page...).
    assert steps["Clean"]["done"] and steps["Clean"]["counts"].startswith("7 documents changed")
    # pi-034 (whitespace copy) and the three near pairs: left for the Duplicates page.
    assert steps["Dedupe"]["counts"].startswith("4 duplicate clusters (8 documents), 4 undecided")
    assert not steps["Dedupe"]["done"]
    # pi-023 (copied summary) and pi-029 (short document) wait, flagged; 4 have no summary.
    assert steps["Curate"]["counts"] == "36 accepted, 6 pending"
    assert steps["Curate"]["next"].startswith("Accept, edit or reject 2 examples")
    assert steps["Label/Review"]["counts"].startswith("4 documents without a summary or draft")
    assert steps["Label/Review"]["id"] == "label"  # Home links it to the Label page
    assert steps["Split"]["done"] and steps["Split"]["counts"].endswith("0 accepted not split")
    assert not steps["Train"]["done"] and steps["Train"]["action"] == "train"
    assert not steps["Compare"]["done"] and not steps["Promote"]["done"]
    assert steps["Promote"]["counts"] == "Production model: smollm2-135m-instruct"


def test_loop_steps_turn_done_or_to_do_as_the_store_changes(con, tmp_path):
    from engine.data.curation import clean_documents
    from engine.data.imports import import_file

    load_sample_if_empty(con)
    dup_store.reject_all_but_one(con, "accepted")
    pending = ex.ids_where(con, ex.ExampleFilter(statuses=("pending",), has_summary=True))
    ex.set_status(con, pending, "accepted")
    steps = by_step(con)
    assert steps["Dedupe"]["done"] and "0 undecided" in steps["Dedupe"]["counts"]
    assert steps["Curate"]["done"] and steps["Split"]["done"]

    new = [{"text": "A forklift ran over a worker's foot in 2024.", "summary": "A forklift."}]
    import_file(con, write_jsonl(tmp_path / "new.jsonl", new), status="accepted")
    steps = by_step(con)
    assert (
        not steps["Clean"]["done"]
        and "1 imported since the last cleaning" in (steps["Clean"]["counts"])
    )
    assert not steps["Dedupe"]["done"] and steps["Dedupe"]["next"].startswith("Find duplicates")
    assert not steps["Split"]["done"] and "1 accepted not split" in steps["Split"]["counts"]
    assert steps["Split"]["next"].startswith("Split 1 accepted examples")

    clean_documents(con)  # the new document is already clean: cleaning records no version
    assert by_step(con)["Clean"]["done"]


def test_home_is_the_default_page_with_the_checklist_and_every_link_for_an_admin(sign_in, tmp_path):
    at = sign_in("ada", "admin")
    assert at.title[0].value == "Tuneloop"
    text = " ".join(m.value for m in at.markdown)
    assert "42 documents" in text and "36 accepted, 6 pending" in text
    assert "4 documents without a summary or draft, 0 drafts waiting for review" in text
    assert "Next: Dedupe." in at.info[0].value
    links = {link.proto.page_script_hash for link in at.page_link}
    assert {link.value for link in at.page_link} >= {"Data", "Duplicates", "Train", "Compare"}
    assert len(links) == 6  # data, duplicates, curate, label, train, compare

    # Live counts: a new document shows up, and Clean and Dedupe are to do again.
    path = write_jsonl(tmp_path / "new.jsonl", [{"text": "A forklift accident report."}])
    from engine.data.imports import import_file

    import_file(open_store(), path)
    at.run()
    text = " ".join(m.value for m in at.markdown)
    assert "43 documents" in text and "1 imported since the last cleaning" in text


def test_a_reviewer_gets_links_only_to_the_steps_a_reviewer_may_do(sign_in):
    at = sign_in("rita", "reviewer")
    assert not at.exception, at.exception
    assert {link.value for link in at.page_link} == {"Data", "Curate", "Label"}
    # Clean, Dedupe, Split, Train, Compare and Promote are admins' work (engine/auth.py).
    assert [c.value for c in at.caption].count("An admin does this step.") == 6
    assert "Next: Curate." in at.info[0].value


@pytest.mark.slow  # the Chat page prepares the default model (converted once per checkout)
def test_chat_lists_earlier_chats_by_first_message_and_date(sign_in):
    from store import chat as chat_store

    con = open_store()
    chat_store.add_message(con, "ada", "c0ffee01", "user", "What is a   tort?\nPlease explain.")
    chat_store.add_message(con, "ada", "c0ffee01", "assistant", "A civil wrong.", "m")
    long = "Summarize this.\n\nDocument:\nThe plaintiff slipped on a wet floor " + "and fell " * 20
    chat_store.add_message(con, "ada", "c0ffee02", "user", long)
    at = sign_in("ada", "admin")
    at.switch_page("pages/chat.py").run()
    assert not at.exception, at.exception
    earlier = at.sidebar.selectbox(key="chat_conversation")
    labels = earlier.options  # as shown, through the page's format_func
    assert labels[0] == "New chat"
    assert labels[1].endswith(" · Summarize: The plaintiff slipped on a wet floor…")
    assert labels[2].endswith(" · What is a tort? Please explain.")
    assert all(len(label.split(" · ", 1)[1]) <= 48 for label in labels[1:])
    earlier.set_value("c0ffee01").run()
    first = at.chat_message[0]  # the chosen chat's messages, user messages shown as plain text
    assert [t.value for t in first.text] == ["What is a   tort?\nPlease explain."]


def test_after_an_import_home_offers_to_review_or_accept_its_pending_examples(con, tmp_path):
    from engine.data.imports import import_file
    from engine.overview import pending_import

    load_sample_if_empty(con)
    assert pending_import(con) is None  # the sample's flagged examples are no import of yours
    new = [
        {"text": f"Case {i}: a ladder gave way under a painter in 2024.", "summary": f"Fall {i}."}
        for i in range(3)
    ]
    import_file(con, write_jsonl(tmp_path / "mine.jsonl", new))  # pending by default
    note = pending_import(con)
    assert note and "3 examples that are still pending" in note and "mine.jsonl" in note
    assert by_step(con)["Curate"]["next"].startswith("Your import")
    ids = ex.ids_where(con, ex.ExampleFilter(statuses=("pending",), has_summary=True))
    ex.set_status(con, ids, "accepted")
    assert pending_import(con) is None


def test_the_label_step_becomes_review_while_drafts_wait(con):
    import pandas as pd

    from store import labelling as label_store

    load_sample_if_empty(con)
    document_id = label_store.documents_to_draft(con)["document_id"].iloc[0]
    label_store.add_drafts(
        con,
        pd.DataFrame(
            {"document_id": [document_id], "summary": ["A fall."], "model_id": "base",
             "prompt_version": 1, "run_id": "run-1", "n_generated_tokens": 2, "truncated": False}
        ),
    )  # fmt: skip
    step = by_step(con)["Label/Review"]
    assert step["id"] == "review" and not step["done"]  # Home links it to the Review page
    assert step["counts"].endswith("1 drafts waiting for review")
    assert step["next"] == "Review 1 drafts."


def test_documents_to_label_leave_out_rejected_copies_of_duplicates(con):
    load_sample_if_empty(con)
    before = by_step(con)["Label/Review"]["counts"]
    dup_store.reject_all_but_one(con, "accepted")
    after = by_step(con)["Label/Review"]["counts"]
    n_before, n_after = int(before.split()[0]), int(after.split()[0])
    assert n_after <= n_before
    from store import labelling as label_store

    assert n_after == len(label_store.documents_to_draft(con))


def test_home_lists_jobs_under_way_with_cancel_for_their_owner_only(sign_in):
    from engine.audit import entries
    from engine.jobs import runqueue
    from store import runs as runs_store

    con = open_store()
    # Unprepared, so the queue leaves it waiting while the page is looked at.
    run_id, _ = runqueue.new_run(con, "eval", {}, "ada", ["--version"], ready=False)
    reviewer = sign_in("rita", "reviewer")
    assert any(run_id in m.value for m in reviewer.markdown)
    assert not [b for b in reviewer.button if b.label == "Cancel"]  # not hers
    at = sign_in("ada", "admin")
    assert any(run_id in m.value for m in at.markdown)
    at.button(key=f"home_cancel_{run_id}").click().run()
    assert not at.exception, at.exception
    assert runs_store.get_run(con, run_id)["state"] == "cancelled"
    assert list(entries(con, actions=("cancel_run",))["target"]) == [run_id]
    at.run()  # the next poll of the fragment
    assert not any(run_id in m.value for m in at.markdown)
