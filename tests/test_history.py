"""Edit history, optimistic concurrency, revert and undo of bulk actions (engine/data/editing.py,
store/history.py), and the Curate and Review pages editing the record they show."""

import pandas as pd
import pytest

from engine.data.editing import (
    StaleEdit,
    bulk_add_tag,
    bulk_set_status,
    revert_change,
    save_example,
    undo_batch,
)
from engine.labelling.review import save_review
from store import examples as ex
from store import history
from store import labelling as label_store
from tests.test_pages import app, open_store  # noqa: F401 (app: a fixture)
from tests.test_store import add


@pytest.fixture
def three(con):
    add(con, [("a", "document a text", "summary a"), ("b", "document b", "summary b")])
    add(con, [("c", "document c", None)])
    ids = dict(con.execute("SELECT document_id, id FROM examples").fetchall())
    return con, [ids["a"], ids["b"], ids["c"]]


ADMIN = {"name": "admin", "role": "admin"}


def reviewer(name: str) -> dict:
    """A signed-in reviewer, as the pages pass them to the engine."""
    return {"name": name, "role": "reviewer"}


def save(con, example_id, user="ann", base=None, **fields):
    state = ex.get_state(con, example_id)
    kwargs = {"summary": state["summary"], "status": state["status"], "tags": state["tags"]}
    kwargs.update(fields)
    base = state["version"] if base is None else base
    return save_example(con, example_id, **kwargs, base_version=base, user=reviewer(user))


def test_a_save_over_a_newer_version_is_refused_and_changes_nothing(three):
    con, (a, _, _) = three
    assert ex.get_state(con, a)["version"] == 1
    assert save(con, a, user="rita", summary="rita's summary", base=1) == 2
    with pytest.raises(StaleEdit, match="changed by rita") as refused:
        save(con, a, user="ann", summary="ann's summary", status="rejected", base=1)
    assert refused.value.current["summary"] == "rita's summary"  # theirs, to show beside yours
    assert refused.value.current["version"] == 2
    state = ex.get_state(con, a)
    assert (state["summary"], state["status"], state["version"]) == ("rita's summary", "pending", 2)
    assert history.example_history(con, a)["username"].tolist() == ["rita"]
    assert save(con, a, user="ann", summary="ann's summary", base=2) == 3  # from the latest: fine


def test_a_save_that_changes_nothing_keeps_the_version_and_writes_no_history(three):
    con, (a, _, _) = three
    assert save(con, a, summary="  summary a  ") == 1
    assert history.example_history(con, a).empty


def test_a_second_save_of_what_is_already_stored_is_a_success(three):
    """Save clicked twice: the second click carries the version the first one replaced."""
    con, (a, _, _) = three
    assert save(con, a, user="ann", summary="ann's summary", tags=["x"], base=1) == 2
    assert save(con, a, user="ann", summary="ann's summary ", tags=["x"], base=1) == 2
    with pytest.raises(StaleEdit):  # a different text over the old version is still refused
        save(con, a, user="ann", summary="another summary", tags=["x"], base=1)
    assert len(history.example_history(con, a)) == 2  # the summary and the tags, once


def test_edits_over_the_import_limits_are_refused_and_change_nothing(three, monkeypatch):
    con, (a, _, _) = three
    monkeypatch.setenv("TUNELOOP_MAX_DOCUMENT_BYTES", "1000")
    before = ex.get_state(con, a)
    with pytest.raises(ValueError, match=r"Not saved: The summary is 3,000 characters, over the"):
        save(con, a, summary="x" * 3000)
    with pytest.raises(ValueError, match="5,000 tags are more than the 50"):
        save(con, a, tags=[f"tag{i}" for i in range(5000)])
    with pytest.raises(ValueError, match="over the 64 a tag may have"):
        save(con, a, tags=["t" * 65])
    with pytest.raises(ValueError, match="Nothing was tagged"):
        bulk_add_tag(con, [a], "t" * 65, ADMIN)
    assert ex.get_state(con, a) == before and history.example_history(con, a).empty
    assert save(con, a, summary="x" * 1000, tags=[f"tag{i}" for i in range(50)]) == 2


def test_search_takes_percent_and_underscore_literally(con):
    add(con, [("p", "Growth was 50% this year.", None), ("q", "Growth was 500 this year.", None)])
    add(con, [("u", "See file_name.txt", None), ("v", "See filexname.txt", None)])
    add(con, [("s", "A back\\slash here", None)])

    def found(text):
        page = ex.page_examples(con, ex.ExampleFilter(search=text))
        return sorted(page["document_id"])

    assert found("50%") == ["p"]
    assert found("file_name") == ["u"]
    assert found("k\\s") == ["s"]
    assert found("%") == ["p"] and found("_") == ["u"]


def test_history_records_who_when_before_and_after_for_each_field(three):
    con, (a, _, c) = three
    assert save(con, a, summary="new a", status="accepted", tags=["x", " y "]) == 2  # one step
    rows = history.example_history(con, a).set_index("field")
    assert set(rows.index) == {"summary", "status", "tags"}
    assert (rows.loc["summary", "before"], rows.loc["summary", "after"]) == ("summary a", "new a")
    assert (rows.loc["status", "before"], rows.loc["status", "after"]) == ("pending", "accepted")
    assert (rows.loc["tags", "before"], rows.loc["tags", "after"]) == ("[]", '["x","y"]')
    assert set(rows["username"]) == {"ann"}
    assert rows["changed_at"].notna().all()
    assert ex.get_example(con, a)["n_summary_words"] == 2
    save(con, c, summary="first summary for c")
    (row,) = history.example_history(con, c).to_dict("records")
    assert (row["field"], pd.isna(row["before"]), row["after"]) == (
        "summary",
        True,
        "first summary for c",
    )


def test_revert_restores_before_and_is_itself_recorded(three):
    con, (a, _, c) = three
    save(con, a, summary="edited by ann", tags=["t1"])
    changes = history.example_history(con, a).set_index("field")["id"]
    message = revert_change(con, int(changes["summary"]), reviewer("bob"))
    assert "summary" in message
    state = ex.get_state(con, a)
    assert (state["summary"], list(state["tags"]), state["version"]) == ("summary a", ["t1"], 3)
    newest = history.example_history(con, a).iloc[0]
    assert (newest["field"], newest["before"], newest["after"], newest["username"]) == (
        "summary",
        "edited by ann",
        "summary a",
        "bob",
    )
    assert newest["note"] == f"revert of change {changes['summary']}"
    revert_change(con, int(changes["tags"]), reviewer("bob"))
    assert list(ex.get_state(con, a)["tags"]) == []
    save(con, c, summary="a summary for c")  # c had none: reverting puts back "none"
    revert_change(con, int(history.example_history(con, c)["id"].iloc[0]), reviewer("bob"))
    assert ex.get_state(con, c)["summary"] is None


def test_revert_is_refused_when_the_field_changed_since(three):
    con, (a, _, _) = three
    save(con, a, status="accepted")
    first = int(history.example_history(con, a)["id"].iloc[0])
    save(con, a, status="needs-edit", user="rita")
    with pytest.raises(ValueError, match="has changed since change"):
        revert_change(con, first, reviewer("bob"))
    assert ex.get_state(con, a)["status"] == "needs-edit"
    assert len(history.example_history(con, a)) == 2


def test_bulk_status_is_one_batch_and_undo_restores_each_previous_status(three):
    con, (a, b, c) = three
    ex.set_status(con, [a], "accepted")
    ex.set_status(con, [b], "needs-edit")
    batch, n = bulk_set_status(con, [a, b, c], "rejected", ADMIN)
    assert n == 3
    rows = con.execute(
        "SELECT example_id, before, after FROM example_history WHERE batch_id = ?", [batch]
    ).fetchall()
    assert set(rows) == {
        (a, "accepted", "rejected"),
        (b, "needs-edit", "rejected"),
        (c, "pending", "rejected"),
    }
    assert history.recent_batches(con)[["id", "n", "undone"]].to_dict("records") == [
        {"id": batch, "n": 3, "undone": False}
    ]
    ex.set_status(con, [c], "accepted", "rita")  # changed since: undo must leave it alone
    assert undo_batch(con, batch, ADMIN) == (2, 1)
    status = {i: ex.get_state(con, i)["status"] for i in (a, b, c)}
    assert status == {a: "accepted", b: "needs-edit", c: "accepted"}
    assert history.recent_batches(con)["undone"].tolist() == [False, True]  # undo, then original
    with pytest.raises(ValueError, match="already undone"):
        undo_batch(con, batch, ADMIN)


def test_bulk_tag_and_its_undo(three):
    con, (a, b, _) = three
    ex.set_tags(con, a, ["keep", "short"])
    batch, n = bulk_add_tag(con, [a, b], "short", ADMIN)
    assert n == 1  # a had it already
    assert list(ex.get_state(con, b)["tags"]) == ["short"]
    assert undo_batch(con, batch, ADMIN) == (1, 0)
    assert list(ex.get_state(con, b)["tags"]) == []
    assert sorted(ex.get_state(con, a)["tags"]) == ["keep", "short"]
    assert ex.remove_tag(con, [a], "keep", "admin") == 1
    assert list(ex.get_state(con, a)["tags"]) == ["short"]


def test_a_bulk_action_that_fails_leaves_no_batch_and_no_history(three):
    con, ids = three
    with pytest.raises(ValueError, match="Unknown status"):
        bulk_set_status(con, ids, "great", ADMIN)
    assert history.recent_batches(con).empty
    assert con.execute("SELECT count(*) FROM example_history").fetchone() == (0,)


def test_a_review_save_records_a_created_entry_with_the_reviewer(three):
    con, _ = three
    drafts = pd.DataFrame(
        {
            "document_id": ["c"],
            "summary": ["A model draft."],
            "model_id": "m",
            "prompt_version": 1,
            "run_id": "r",
            "n_generated_tokens": 3,
            "truncated": False,
        }
    )
    label_store.add_drafts(con, drafts)
    draft = label_store.next_for_reviewer(con, "rita")
    example_id = save_review(con, draft["id"], "rita", "The reviewer's summary.", 4)
    (row,) = history.example_history(con, example_id).to_dict("records")
    assert (row["field"], row["after"], row["username"]) == (
        "created",
        "The reviewer's summary.",
        "rita",
    )
    (recent,) = label_store.recent_reviews(con, "rita").to_dict("records")
    assert (recent["example_id"], recent["created_change"]) == (example_id, row["id"])
    assert "rejected" in revert_change(con, row["id"], reviewer("rita"))  # withdrawing a review
    assert ex.get_state(con, example_id)["status"] == "rejected"
    with pytest.raises(ValueError, match="changed since it was created"):
        revert_change(con, row["id"], reviewer("rita"))


def test_upgrade_to_m005_keeps_examples_at_version_1(monkeypatch):
    import duckdb

    from store import db
    from store.migrations import MIGRATIONS, m005_history

    old = duckdb.connect(":memory:")
    monkeypatch.setattr(db, "MIGRATIONS", MIGRATIONS[: MIGRATIONS.index(m005_history)])
    db.migrate(old)
    add(old, [("a", "document a", "summary a")])
    monkeypatch.setattr(db, "MIGRATIONS", MIGRATIONS)
    assert "m005_history" in db.migrate(old)
    (example_id,) = ex.ids_where(old, ex.ExampleFilter())
    assert ex.get_state(old, example_id)["version"] == 1
    indexes = old.execute("SELECT index_name FROM duckdb_indexes()").fetchall()
    assert ("examples_document",) in indexes  # dropped to add the column, then made again
    assert save(old, example_id, summary="after the upgrade") == 2


@pytest.fixture
def admin_app(app):  # noqa: F811 (test_pages' fixture: a fresh app, signed in as admin)
    return app


def two_examples(con) -> tuple[int, int]:
    page = ex.page_examples(con, ex.ExampleFilter(has_summary=True))
    return int(page["id"].iloc[0]), int(page["id"].iloc[1])


def test_curate_editor_opens_the_record_it_shows_and_saves_only_it(admin_app):
    con = open_store()
    a, b = two_examples(con)
    before_a, before_b = ex.get_state(con, a), ex.get_state(con, b)
    summary_b = before_b["summary"]
    admin_app.switch_page("pages/curate.py").run()
    admin_app.number_input(key="curate_open").set_value(a).run()
    admin_app.text_area(key=f"curate_summary_{a}").input("typed into A, never saved").run()
    admin_app.number_input(key="curate_open").set_value(b).run()
    assert not admin_app.exception, admin_app.exception
    assert admin_app.text_area(key=f"curate_summary_{b}").value == summary_b  # not A's text
    admin_app.text_area(key=f"curate_summary_{b}").input("B's corrected summary.")
    admin_app.radio(key=f"curate_status_{b}").set_value("needs-edit")
    admin_app.button(key=f"FormSubmitter:curate_edit_{b}-Save").click().run()
    assert not admin_app.exception, admin_app.exception
    assert ex.get_state(con, a) == before_a
    state = ex.get_state(con, b)
    assert (state["summary"], state["status"], state["updated_by"]) == (
        "B's corrected summary.",
        "needs-edit",
        "admin",
    )
    assert [t.value for t in admin_app.toast] == [f"Saved example {b}"]
    (caption,) = [c.value for c in admin_app.main.caption if "version" in c.value]
    assert caption.startswith("needs-edit")  # drawn after the save, from the store
    assert f"version {before_b['version'] + 1}" in caption
    table = admin_app.dataframe[0].value.set_index("id")
    assert table.loc[b, "status"] == "needs-edit"
    changes = history.example_history(con, b).set_index("field")
    assert changes.loc["summary", "username"] == "admin"
    admin_app.button(key=f"curate_revert_{changes.loc['summary', 'id']}").click().run()  # History
    assert not admin_app.exception, admin_app.exception
    assert ex.get_state(con, b)["summary"] == summary_b
    assert admin_app.text_area(key=f"curate_summary_{b}").value == summary_b  # editor reloaded


def test_curate_refuses_a_stale_save_and_shows_both_texts(admin_app):
    con = open_store()
    a, _ = two_examples(con)
    admin_app.switch_page("pages/curate.py").run()
    admin_app.number_input(key="curate_open").set_value(a).run()
    ex.update_summary(con, a, "Saved meanwhile by rita.", "rita")  # behind the editor's back
    admin_app.text_area(key=f"curate_summary_{a}").input("Mine, typed in the open editor.")
    admin_app.button(key=f"FormSubmitter:curate_edit_{a}-Save").click().run()
    assert not admin_app.exception, admin_app.exception
    assert "changed by rita" in admin_app.error[0].value
    shown = [c.value for c in admin_app.code]
    assert "Saved meanwhile by rita." in shown and "Mine, typed in the open editor." in shown
    assert ex.get_state(con, a)["summary"] == "Saved meanwhile by rita."
    admin_app.button(key=f"curate_reload_latest_{a}").click().run()
    assert not admin_app.error
    assert admin_app.text_area(key=f"curate_summary_{a}").value == "Saved meanwhile by rita."


def test_curate_bulk_reject_confirms_then_undo_restores(admin_app):
    con = open_store()
    before = dict(con.execute("SELECT id, status FROM examples").fetchall())
    admin_app.switch_page("pages/curate.py").run()
    admin_app.selectbox(key="curate_bulk_status").set_value("rejected").run()
    admin_app.button(key="curate_bulk_apply").click().run()
    assert f"Reject {len(before):,} examples?" in admin_app.warning[0].value
    assert dict(con.execute("SELECT id, status FROM examples").fetchall()) == before
    admin_app.text_input(key="curate_search").input("zzz-no-such-text").run()  # the filter changed
    assert not [b for b in admin_app.button if b.label == "Confirm"]  # the old question is gone
    admin_app.text_input(key="curate_search").input("").run()
    admin_app.button(key="curate_bulk_apply").click().run()
    next(b for b in admin_app.button if b.label == "Confirm").click().run()
    assert not admin_app.exception, admin_app.exception
    assert set(con.execute("SELECT DISTINCT status FROM examples").fetchall()) == {("rejected",)}
    (batch,) = history.recent_batches(con)["id"]
    admin_app.button(key=f"curate_undo_{batch}").click().run()
    assert not admin_app.exception, admin_app.exception
    assert dict(con.execute("SELECT id, status FROM examples").fetchall()) == before


def test_review_opens_each_draft_clean_and_records_the_reviewer(admin_app):
    con = open_store()
    docs = ex.page_examples(con, ex.ExampleFilter())["document_id"].iloc[:2].tolist()
    label_store.add_drafts(
        con,
        pd.DataFrame(
            {
                "document_id": docs,
                "summary": ["Draft one.", "Draft two."],
                "model_id": "m",
                "prompt_version": 1,
                "run_id": "r",
                "n_generated_tokens": 2,
                "truncated": False,
            }
        ),
    )
    first, second = (r[0] for r in con.execute("SELECT id FROM drafts ORDER BY id").fetchall())
    admin_app.switch_page("pages/review.py").run()
    admin_app.text_area(key=f"review_summary_{first}").input("Draft one, corrected.")
    admin_app.checkbox(key=f"review_faithful_{first}").check()
    admin_app.button(key=f"FormSubmitter:review_form_{first}-Save as reference").click().run()
    assert not admin_app.exception, admin_app.exception
    assert admin_app.text_area(key=f"review_summary_{second}").value == "Draft two."
    assert not admin_app.checkbox(key=f"review_faithful_{second}").value
    admin_app.button(key=f"FormSubmitter:review_form_{second}-Save as reference").click().run()
    saved = con.execute(
        "SELECT r.draft_id, e.summary, h.username FROM reviews r "
        "JOIN examples e ON e.id = r.example_id "
        "JOIN example_history h ON h.example_id = e.id AND h.field = 'created' ORDER BY 1"
    ).fetchall()
    assert saved == [
        (first, "Draft one, corrected.", "admin"),
        (second, "Draft two.", "admin"),
    ]
    review_id = con.execute("SELECT max(id) FROM reviews").fetchone()[0]
    admin_app.button(key=f"review_revert_{review_id}").click().run()  # Your recent reviews
    assert not admin_app.exception, admin_app.exception
    example_id = con.execute("SELECT example_id FROM reviews WHERE id = ?", [review_id]).fetchone()
    assert ex.get_state(con, example_id[0])["status"] == "rejected"
