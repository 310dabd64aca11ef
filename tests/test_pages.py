"""AppTests: each page starts from streamlit_app.py on a fresh data folder (with the sample set
loaded), does one real interaction by widget key, and the test checks what was stored."""

import pytest
from streamlit.testing.v1 import AppTest

import store
from engine.paths import db_path
from store import examples as ex
from tests.conftest import write_jsonl


@pytest.fixture
def app(home):
    """The app on a fresh install, after creating the admin account on the first visit."""
    at = AppTest.from_file("streamlit_app.py", default_timeout=120)
    at.run()
    at.text_input(key="login_new_name").input("admin")
    at.text_input(key="login_new_password").input("correct horse")
    at.button[0].click().run()
    assert not at.exception, at.exception
    assert at.session_state["user"] == {"name": "admin", "role": "admin"}
    return at


def open_store():
    return store.connect(db_path())  # same process: shares the app's database instance


def test_first_start_loads_the_sample_set(app):
    con = open_store()
    assert ex.count_examples(con) >= 40
    assert ex.count_examples(con, ex.ExampleFilter(has_summary=False)) >= 1
    assert "examples" in app.sidebar.caption[0].value


def test_data_page_imports_a_file_by_path(app, tmp_path):
    path = write_jsonl(tmp_path / "new.jsonl", [
        {"text": "A brand new document about a forklift accident at a warehouse in 2024.",
         "summary": "A forklift accident."}])
    app.switch_page("pages/data.py").run()
    app.text_input(key="data_import_path").input(str(path)).run()
    app.button(key="data_import").click().run()
    assert not app.exception, app.exception
    assert "1 new documents" in app.success[0].value
    assert ex.count_examples(open_store(), ex.ExampleFilter(sources=("new.jsonl",))) == 1


def test_data_page_reports_a_bad_file_and_stores_nothing(app, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine", "summary": "ok"}\n{not json\n')
    before = ex.count_examples(open_store())
    app.switch_page("pages/data.py").run()
    app.text_input(key="data_import_path").input(str(bad)).run()
    app.button(key="data_import").click().run()
    assert "line 2" in app.error[0].value
    assert ex.count_examples(open_store()) == before


def test_curate_page_bulk_accepts_a_filter(app):
    app.switch_page("pages/curate.py").run()
    assert not app.exception, app.exception
    app.multiselect(key="curate_statuses").set_value(["pending"]).run()
    app.selectbox(key="curate_bulk_status").set_value("accepted").run()
    app.button(key="curate_bulk_apply").click().run()
    assert not app.exception, app.exception
    assert ex.count_examples(open_store(), ex.ExampleFilter(statuses=("pending",))) == 0


def test_curate_page_edits_a_summary(app):
    app.switch_page("pages/curate.py").run()
    example_id = app.number_input(key="curate_open").value
    app.text_area(key="curate_summary").input("A corrected summary.")
    app.radio(key="curate_status").set_value("accepted")
    app.button[-1].click().run()  # the form's Save button
    assert not app.exception, app.exception
    row = ex.get_example(open_store(), example_id)
    assert (row["summary"], row["status"]) == ("A corrected summary.", "accepted")


def test_duplicates_page_keeps_one_of_a_cluster(app):
    app.switch_page("pages/duplicates.py").run()
    assert not app.exception, app.exception
    cluster = app.selectbox(key="dup_cluster").value
    con = open_store()
    from store import duplicates as dups

    keep = int(dups.cluster_members(con, cluster)["id"].iloc[0])
    app.button(key=f"dup_keep_{keep}").click().run()
    statuses = dups.cluster_members(con, cluster).set_index("id")["status"]
    assert statuses[keep] == "accepted"
    assert (statuses.drop(keep) == "rejected").all()
