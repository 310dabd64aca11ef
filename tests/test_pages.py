"""AppTests: each page starts from streamlit_app.py on a fresh data folder (with the sample set
loaded), does one real interaction by widget key, and the test checks what was stored."""

import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import store
from engine.paths import db_path
from store import examples as ex
from tests.conftest import ROOT, write_jsonl


@pytest.fixture
def app(home):
    """The app on a fresh install, after creating the admin account on the first visit."""
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=120)
    at.run()
    at.text_input(key="login_setup_token").input((home / "setup-token").read_text())
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


def test_data_page_imports_a_file_by_path(app, home):
    (home / "imports").mkdir(exist_ok=True)  # the web app imports by path from there only
    path = write_jsonl(
        home / "imports" / "new.jsonl",
        [
            {
                "text": "A brand new document about a forklift accident at a warehouse in 2024.",
                "summary": "A forklift accident.",
            }
        ],
    )
    app.switch_page("pages/data.py").run()
    app.text_input(key="data_import_path").input(str(path)).run()
    app.button(key="data_import").click().run()
    assert not app.exception, app.exception
    assert "1 new documents" in app.success[0].value
    assert ex.count_examples(open_store(), ex.ExampleFilter(sources=("new.jsonl",))) == 1


def test_data_page_reports_a_bad_file_and_stores_nothing(app, home):
    (home / "imports").mkdir(exist_ok=True)
    bad = home / "imports" / "bad.jsonl"
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
    pending = ex.count_examples(open_store(), ex.ExampleFilter(statuses=("pending",)))
    assert pending > 0 and f"Accept {pending:,} examples?" in app.warning[0].value  # asks first
    next(b for b in app.button if b.label == "Confirm").click().run()
    assert not app.exception, app.exception
    assert ex.count_examples(open_store(), ex.ExampleFilter(statuses=("pending",))) == 0


def test_curate_page_edits_a_summary(app):
    app.switch_page("pages/curate.py").run()
    example_id = int(ex.page_examples(open_store(), ex.ExampleFilter())["id"].iloc[5])
    app.number_input(key="curate_open").set_value(example_id).run()
    app.text_area(key=f"curate_summary_{example_id}").input("A corrected summary.")
    app.radio(key=f"curate_status_{example_id}").set_value("accepted")
    app.button(key=f"FormSubmitter:curate_edit_{example_id}-Save").click().run()
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


def test_review_page_saves_a_correction(app):
    import pandas as pd

    from store import labelling as label_store

    con = open_store()
    doc_id = ex.page_examples(con, ex.ExampleFilter())["document_id"].iloc[0]
    label_store.add_drafts(
        con,
        pd.DataFrame(
            {
                "document_id": [doc_id],
                "summary": ["A draft summary."],
                "model_id": "m",
                "prompt_version": 1,
                "run_id": "r",
                "n_generated_tokens": 4,
                "truncated": False,
            }
        ),
    )
    app.switch_page("pages/review.py").run()
    assert not app.exception, app.exception
    draft_id = con.execute("SELECT max(id) FROM drafts").fetchone()[0]
    app.text_area(key=f"review_summary_{draft_id}").input("A reviewer's corrected summary.")
    app.checkbox(key=f"review_faithful_{draft_id}").check()
    app.button[0].click().run()  # "Save as reference", the form's first button
    assert not app.exception, app.exception
    saved = ex.page_examples(con, ex.ExampleFilter(sources=("review",)))
    assert saved["summary"].tolist() == ["A reviewer's corrected summary."]
    assert saved["status"].tolist() == ["accepted"]
    assert con.execute("SELECT reviewer, faithful FROM reviews").fetchall() == [("admin", True)]


def test_reviewer_cannot_reach_admin_pages(app):
    from engine.auth import create_user

    create_user(open_store(), "rita", "reviewer pass", "reviewer")
    app = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=120).run()
    app.text_input(key="login_name").input("rita")
    app.text_input(key="login_password").input("reviewer pass")
    app.button[0].click().run()
    assert app.session_state["user"] == {"name": "rita", "role": "reviewer"}
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        app.switch_page("pages/users.py")  # not even in a reviewer's navigation
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        app.switch_page("pages/compare.py")  # who wrote which summary would unblind A/B votes


@pytest.mark.slow
def test_chat_page_summarizes_with_the_default_model(app):
    app.switch_page("pages/chat.py").run()
    assert not app.exception, app.exception
    app.text_area(key="chat_paste").input(
        "The plaintiff, Mary Jones, slipped on a wet floor at the Fairview grocery store on "
        "3 May 2022 and broke her wrist. The store settled for $40,000."
    )
    app.number_input(key="chat_max_new").set_value(40)
    app.button(key="chat_summarize").click().run()
    assert not app.exception, app.exception
    from store import chat as chat_store

    messages = chat_store.conversation(
        open_store(), "admin", app.session_state["chat_conversation"]
    )
    assert [m["role"] for m in messages] == ["user", "assistant"]
    assert messages[1]["content"].strip() and messages[1]["model_id"] == "smollm2-135m-instruct"


def test_users_page_adds_a_reviewer(app):
    from store import users

    app.switch_page("pages/users.py").run()
    app.text_input(key="users_name").input("rita")
    app.text_input(key="users_password").input("reviewer pass")
    app.selectbox(key="users_role").set_value("reviewer")
    app.button(key="users_add_submit").click().run()
    assert not app.exception, app.exception
    assert users.get_user(open_store(), "rita")["role"] == "reviewer"


@pytest.mark.slow
def test_label_page_starts_a_drafting_run_that_lands_drafts(app):
    import time

    from engine.scheduler import tick
    from store import runs as runs_store

    app.switch_page("pages/label.py").run()
    assert not app.exception, app.exception
    app.number_input(key="label_limit").set_value(2)
    app.number_input(key="label_max_new").set_value(24)
    app.button[0].click().run()  # the form's "Start drafting"
    assert not app.exception, app.exception
    con = open_store()
    (run_id,) = runs_store.list_runs(con, kind="draft")["id"]
    deadline = time.time() + 240
    while runs_store.get_run(con, run_id)["state"] in ("queued", "running"):
        assert time.time() < deadline, "drafting did not finish"
        tick(con)  # what the app's background poller does
        time.sleep(1)
    assert runs_store.get_run(con, run_id)["state"] == "succeeded"
    assert con.execute("SELECT count(*) FROM drafts WHERE run_id = ?", [run_id]).fetchone() == (2,)


@pytest.mark.slow
def test_train_page_button_starts_a_run(app):
    from engine.jobs import runfolder, runqueue
    from store import runs as runs_store

    app.switch_page("pages/train.py").run()
    assert not app.exception, app.exception
    app.button(key="train_retrain").click().run()
    assert not app.exception, app.exception
    con = open_store()
    for _ in range(240):  # the click queues the retrain on a thread and returns at once
        table = runs_store.list_runs(con, kind="train")
        if len(table):
            break
        time.sleep(0.25)
    try:
        assert len(table) == 1 and table["state"].iloc[0] == "running"
        run_dir = table["run_dir"].iloc[0]
        config = runfolder.read_json(Path(run_dir) / "config.json")
        assert config["method"] == "lora" and config["dataset_version"] == 1
        assert (Path(run_dir) / "train.jsonl").exists()
        assert not (Path(run_dir) / "test.jsonl").exists()  # the test split never travels
    finally:
        runqueue.cancel_run(con, table["id"].iloc[0])
        runfolder.request_cancel(table["run_dir"].iloc[0], grace_s=30)


@pytest.mark.slow
def test_train_page_starts_a_sweep(app):
    from engine.jobs import runfolder
    from engine.training.sweeps import cancel_sweep
    from store import sweeps as sweeps_store

    app.switch_page("pages/train.py").run()
    assert not app.exception, app.exception
    app.text_input(key="sweep_lr").input("1e-4, 1e-3")
    app.text_input(key="sweep_epochs").input("1")
    app.text_input(key="sweep_ranks").input("4, 8")
    app.selectbox(key="sweep_method").set_value("grid")
    app.button(key="sweep_start").click().run()
    assert not app.exception, app.exception
    con = open_store()
    (sweep,) = sweeps_store.list_sweeps(con).to_dict("records")
    trials = sweeps_store.sweep_trials(con, sweep["id"])
    try:
        assert sweep["state"] == "running" and len(trials) == 1  # one trial at a time
        params = runfolder.read_json(Path(trials["run_dir"].iloc[0]) / "config.json")
        assert params["learning_rate"] in (1e-4, 1e-3) and params["lora_r"] in (4, 8)
        assert any("4 trials" in s.value for s in app.success)
    finally:
        cancel_sweep(con, sweep["id"])
        runfolder.request_cancel(trials["run_dir"].iloc[0], grace_s=30)
    assert sweeps_store.get_sweep(con, sweep["id"])["state"] == "cancelled"


@pytest.mark.slow
def test_compare_page_shows_a_comparison_and_promotes_the_better_model(app):
    from engine.evaluation.runs import test_dataset
    from engine.jobs import runfolder, runqueue
    from engine.models.registry import production_model
    from store import evals as evals_store
    from store import runs as runs_store
    from store import splits as splits_store
    from tests.test_evaluation import plant_evaluation

    app.switch_page("pages/compare.py").run()
    assert not app.exception, app.exception
    con = open_store()
    dataset_id = test_dataset(con)
    rows = splits_store.dataset_rows(con, dataset_id)
    test_ids = rows.loc[rows["split"] == "test", "example_id"].tolist()
    base = production_model(con)
    scores = [0.2 + 0.05 * (i % 3) for i in range(len(test_ids))]
    plant_evaluation(con, base, dataset_id, test_ids, scores)
    plant_evaluation(con, "tuned", dataset_id, test_ids, [s + 0.1 for s in scores])

    app.run()
    app.selectbox(key="compare_dataset").set_value(dataset_id)
    app.selectbox(key="compare_b").set_value("tuned").run()
    assert not app.exception, app.exception
    assert app.selectbox(key="compare_a").value == base  # A defaults to production
    table = app.dataframe[0].value
    assert "ROUGE-2" in set(table["metric"]) and set(table["clear_winner"]) == {"B", "—"}
    app.toggle(key="compare_losses").set_value(True).run()  # B never lost: nothing listed
    assert not app.exception, app.exception
    app.button(key="compare_blind").click().run()
    from engine.evaluation.preference import open_pairs

    assert len(open_pairs(con)) == 1  # reviewers can now vote on this pair, blind

    app.button(key="FormSubmitter:compare_promote-Promote tuned to production").click().run()
    assert not app.exception, app.exception
    assert production_model(con) == "tuned"
    assert evals_store.list_promotions(con)["model_id"].tolist() == ["tuned"]

    app.number_input(key="compare_max_new").set_value(64)
    app.button(key=f"compare_eval_A_{base}").click().run()  # "Re-evaluate" A starts a run
    assert not app.exception, app.exception
    started = runs_store.list_runs(con, kind="eval", states=("queued", "running"))
    assert len(started) == 1
    generation = evals_store.get_evaluation(con, started["id"].iloc[0])["generation"]
    assert '"max_new_tokens": 64' in generation  # the page's settings reach the run
    runqueue.cancel_run(con, started["id"].iloc[0])
    runfolder.request_cancel(started["run_dir"].iloc[0], grace_s=30)


def test_count_tokens_returns_at_once_and_reports_when_done(app):
    from engine.jobs import background
    from ui.data_tabs import TOKENS_TASK

    app.switch_page("pages/data.py").run()
    app.button(key="data_tokens").click().run()
    assert not app.exception, app.exception
    state = background.state(TOKENS_TASK)
    assert state is not None  # the click queued it and the page was drawn meanwhile
    state["thread"].join(120)
    app.run()
    assert any("Counted tokens" in s.value for s in app.success), [e.value for e in app.error]
    counted = open_store().execute("SELECT count(*) FROM documents WHERE n_tokens > 0").fetchone()
    assert counted[0] >= 40


def test_home_points_only_to_files_that_exist(app):
    import re

    app.switch_page("pages/home.py").run()
    kinds = ("markdown", "info", "caption")
    shown = " ".join(e.value for kind in kinds for e in getattr(app, kind))
    named = set(re.findall(r"`([\w/.-]+\.md)`", shown))
    assert "engine/data/sample_set/README.md" in named  # the walk met engine/samples/README.md
    assert all((ROOT / path).exists() for path in named), named


def test_the_split_message_says_why_train_counts_can_be_lower(app):
    app.switch_page("pages/data.py").run()
    next(b for b in app.button if b.label == "Split").click().run()
    assert not app.exception, app.exception
    said = " ".join(s.value for s in app.success)
    assert "Training uses accepted examples only" in said, said  # the walk: 188 here, 186 there
