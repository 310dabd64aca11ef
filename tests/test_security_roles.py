"""Roles checked in the engine (reviewers refused every admin action, with nothing changed), the
audit log (who, what, counts before and after), data shown as text (never Markdown links,
images or headings), and blind A/B that stays blind (reviewers' Chat and drafting)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

import store
from engine import auth
from engine.audit import entries
from engine.data.curation import clean_documents
from engine.data.dedupe import dedupe_documents, resolve_all, resolve_cluster
from engine.data.editing import (
    bulk_add_tag,
    bulk_set_status,
    revert_change,
    save_example,
    undo_batch,
)
from engine.data.export import export_dataset
from engine.data.imports import import_file
from engine.data.samples import load_sample_if_empty
from engine.data.sources import ImportProblem
from engine.data.split import split_examples
from engine.evaluation.comparison import promote
from engine.evaluation.preference import (
    REVIEWER_CHAT,
    chat_settings,
    close_pair,
    draft_settings,
    open_pair,
)
from engine.evaluation.report import diff_html
from engine.evaluation.runs import start_evaluation
from engine.jobs import runfolder
from engine.models.generation import GenerationSettings
from engine.models.registry import production_model
from engine.training.config import TrainConfig
from engine.training.runs import retrain_latest, start_training
from engine.training.sweeps import SweepSpace, cancel_sweep, start_sweep, use_best
from store import duplicates as dup_store
from store import examples as ex
from store import history
from tests.conftest import ROOT, write_jsonl
from tests.test_evaluation import planted_store
from ui.text import no_remote_content, plain

ADMIN = {"name": "ada", "role": "admin"}
REVIEWER = {"name": "rita", "role": "reviewer"}
HOSTILE = (
    "# Heading [click](http://evil.example/x) ![beacon](http://evil.example/p.gif) "
    "<img src=http://evil.example/i.gif> **bold** $5 :red[red]"
)


@pytest.fixture
def loaded(con, home):
    """The sample set (imported, cleaned, deduplicated and split by the console), one bulk
    action to undo, a duplicate cluster, three planted evaluations (base is production), the
    admin and reviewer accounts."""
    load_sample_if_empty(con)
    ids = ex.ids_where(con, ex.ExampleFilter())
    batch, _ = bulk_set_status(con, ids[:3], "needs-edit", ADMIN)
    cluster = dup_store.cluster_summary(con, limit=1)["cluster_id"].iloc[0]
    keep = int(dup_store.cluster_members(con, cluster)["id"].iloc[0])
    planted_store(con)
    auth.create_user(con, "ada", "admin password", "admin")
    auth.create_user(con, "rita", "reviewer pass", "reviewer")
    return SimpleNamespace(con=con, home=home, ids=ids, batch=batch, cluster=cluster, keep=keep)


def snapshot(con, home: Path) -> dict:
    """Every table's rows and every file (not empty folder) under the data folder."""
    tables = [t for (t,) in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()]
    rows = {t: sorted(map(repr, con.execute(f'SELECT * FROM "{t}"').fetchall())) for t in tables}
    return rows | {"files": sorted(str(p) for p in home.rglob("*") if p.is_file())}


ADMIN_ACTIONS = {
    "bulk_set_status": lambda f, u: bulk_set_status(f.con, f.ids, "rejected", u),
    "bulk_add_tag": lambda f, u: bulk_add_tag(f.con, f.ids, "mine", u),
    "undo_batch": lambda f, u: undo_batch(f.con, f.batch, u),
    "dedupe_documents": lambda f, u: dedupe_documents(f.con, user=u),
    "resolve_cluster": lambda f, u: resolve_cluster(f.con, f.cluster, f.keep, u),
    "resolve_all": lambda f, u: resolve_all(f.con, "longest", u),
    "split_examples": lambda f, u: split_examples(f.con, user=u),
    "re-split": lambda f, u: split_examples(f.con, reset=True, user=u),
    "clean_documents": lambda f, u: clean_documents(f.con, user=u),
    "export_dataset": lambda f, u: export_dataset(f.con, user=u),
    "start_training": lambda f, u: start_training(f.con, TrainConfig(), "base", u),
    "retrain_latest": lambda f, u: retrain_latest(f.con, u),
    "start_sweep": lambda f, u: start_sweep(f.con, TrainConfig(), "base", SweepSpace(), u),
    "use_best": lambda f, u: use_best(f.con, "sweep-1", u),
    "cancel_sweep": lambda f, u: cancel_sweep(f.con, "sweep-1", u),
    "start_evaluation": lambda f, u: start_evaluation(f.con, "better", user=u),
    "promote": lambda f, u: promote(f.con, "better", u),
    "open_pair": lambda f, u: open_pair(f.con, "eval-base", "eval-better", u),
    "close_pair": lambda f, u: close_pair(f.con, "eval-base", "eval-better", u),
    "create_user": lambda f, u: auth.create_user(f.con, "mallory", "long password", "admin", u),
    "set_disabled": lambda f, u: auth.set_disabled(f.con, u, "ada", True),
    "reset_password": lambda f, u: auth.reset_password(f.con, u, "ada", "new password"),
    "log_out_user": lambda f, u: auth.log_out_user(f.con, u, "ada"),
    "delete_user": lambda f, u: auth.delete_user(f.con, u, "ada"),
}


@pytest.mark.parametrize("user", [REVIEWER, None], ids=["reviewer", "nobody"])
@pytest.mark.parametrize("action", list(ADMIN_ACTIONS))
def test_admin_actions_are_refused_in_the_engine_and_change_nothing(loaded, action, user):
    before = snapshot(loaded.con, loaded.home)
    with pytest.raises(auth.PermissionDenied) as refused:
        ADMIN_ACTIONS[action](loaded, user)
    assert "ask an admin" in str(refused.value) if user else "log in" in str(refused.value)
    assert snapshot(loaded.con, loaded.home) == before


def test_reviewers_import_uploads_but_not_by_path(loaded, home):
    con = loaded.con
    (home / "imports").mkdir(parents=True)
    path = write_jsonl(home / "imports" / "cases.jsonl", [{"text": "A new case about a fall."}])
    before = snapshot(con, home)
    with pytest.raises(ImportProblem, match="cannot import by path"):
        import_file(con, path, user=REVIEWER)
    assert snapshot(con, home) == before
    assert import_file(con, path, user=ADMIN).n_new_documents == 1
    (entry,) = entries(con, actions=("import",), usernames=("ada",)).to_dict("records")
    assert entry["target"] == "cases.jsonl"
    assert entry["details"]["new_documents"] == 1
    assert entry["details"]["after"]["documents"] == entry["details"]["before"]["documents"] + 1


def test_reviewers_edit_one_example_under_their_own_name(loaded):
    con, example_id = loaded.con, loaded.ids[5]
    state = ex.get_state(con, example_id)
    with pytest.raises(auth.PermissionDenied, match="log in"):
        save_example(con, example_id, summary="x", status="accepted", tags=[],
                     base_version=state["version"], user=None)  # fmt: skip
    save_example(con, example_id, summary="Rita's summary.", status="accepted", tags=["ok"],
                 base_version=state["version"], user=REVIEWER)  # fmt: skip
    assert ex.get_state(con, example_id)["updated_by"] == "rita"
    changes = history.example_history(con, example_id)
    assert set(changes["username"]) == {"rita"}
    summary_change = int(changes.set_index("field").loc["summary", "id"])
    revert_change(con, summary_change, REVIEWER)
    assert ex.get_state(con, example_id)["summary"] == state["summary"]
    assert history.example_history(con, example_id)["username"].iloc[0] == "rita"


def test_bulk_actions_and_their_undo_are_audited_with_counts(loaded):
    con, ids = loaded.con, loaded.ids[:10]
    statuses = ex.page_examples(con, ex.ExampleFilter(), 0, 1000).set_index("id")["status"]
    before = statuses[ids].value_counts().to_dict()
    batch, changed = bulk_set_status(con, ids, "rejected", ADMIN)
    entry = entries(con, actions=("bulk_status",)).iloc[0]
    assert (entry["username"], entry["target"]) == ("ada", f"batch {batch}")
    details = entry["details"]
    assert details["before"] == before and details["after"] == {"rejected": 10}
    assert details["changed"] == changed == 10 - before.get("rejected", 0)
    assert details["status"] == "rejected" and details["examples"] == 10

    restored, _ = undo_batch(con, batch, ADMIN)
    undo = entries(con, actions=("undo",)).iloc[0]
    assert undo["username"] == "ada" and undo["details"]["restored"] == restored == changed
    counts = undo["details"]
    assert counts["after"].get("rejected", 0) == counts["before"]["rejected"] - changed


def test_admin_actions_are_accepted_and_audited(loaded, monkeypatch):
    from engine.training.config import PRESETS
    from store import registry as reg_store

    con, home = loaded.con, loaded.home
    started = []
    monkeypatch.setattr(runfolder, "start_worker", lambda run_dir, *a, **k: started.append(run_dir))
    rejected = ex.count_examples(con, ex.ExampleFilter(statuses=("rejected",)))
    n = resolve_all(con, "longest", ADMIN)
    assert n > 0
    new = [
        {"text": f"Case {i}: a {word} fell from a {place} and broke a wrist.", "summary": "A fall."}
        for i, (word, place) in enumerate(
            [("roofer", "roof"), ("painter", "ladder"), ("courier", "loading dock")]
        )
    ]
    (home / "imports").mkdir(parents=True)  # where admins import by path from
    import_file(
        con, write_jsonl(home / "imports" / "new.jsonl", new), status="accepted", user=ADMIN
    )
    split_examples(con, user=ADMIN)
    clean_documents(con, user=ADMIN)
    dataset_id, out, _ = export_dataset(con, out_dir=home / "export", user=ADMIN)
    promote(con, "better", ADMIN)
    open_pair(con, "eval-base", "eval-better", ADMIN)
    reg_store.register_model(con, "tiny-base", "full", str(home / "tiny-base"))
    config = TrainConfig.from_dict(PRESETS["Quick (CPU demo)"])
    run_id, _ = start_training(con, config, "tiny-base", ADMIN)
    auth.set_disabled(con, ADMIN, "rita", True)

    assert production_model(con) == "better" and len(started) == 1 and out.exists()
    log = entries(con, usernames=("ada",)).set_index("action")
    resolved = log.loc["resolve_all", "details"]
    assert resolved["before"].get("rejected", 0) == rejected
    assert resolved["after"]["rejected"] == rejected + n == resolved["rejected"] + rejected
    split = log.loc["split"]
    assert split["target"] == "new examples"
    assert split["details"]["before"]["none"] - split["details"]["after"]["none"] == 3
    assert (
        log.loc["clean", "details"]["documents"]
        == con.execute("SELECT count(*) FROM documents").fetchone()[0]
    )
    assert log.loc["export", "target"] == f"dataset v{dataset_id}"
    assert log.loc["promote", "details"]["before"] == {"production": "base"}
    assert log.loc["promote", "details"]["after"] == {"production": "better"}
    assert log.loc["open_pair", "target"] == "eval-base vs eval-better"
    assert log.loc["train", "target"] == run_id
    assert log.loc["user_disable", "target"] == "rita"
    assert set(entries(con, usernames=("console",))["action"]) >= {"import", "clean", "split"}


def test_audit_log_migration_and_upgrade(tmp_path, monkeypatch):
    from store import db
    from store.migrations import MIGRATIONS, m006_security, m007_audit

    con = store.connect(":memory:")
    columns = con.execute(
        "SELECT column_name FROM duckdb_columns() WHERE table_name = 'audit_log'"
    ).fetchall()
    assert [c for (c,) in columns] == [
        "id", "logged_at", "username", "action", "target", "details"
    ]  # fmt: skip
    assert MIGRATIONS.index(m007_audit) == MIGRATIONS.index(m006_security) + 1
    monkeypatch.setattr(db, "MIGRATIONS", MIGRATIONS[: MIGRATIONS.index(m007_audit)])
    old = store.connect(tmp_path / "old.duckdb")
    monkeypatch.setattr(db, "MIGRATIONS", MIGRATIONS)
    assert db.migrate(old)[0] == "m007_audit"  # and any later ones
    auth.create_user(old, "bob", "long enough", "reviewer")
    assert entries(old)[["username", "action", "target"]].values.tolist() == [
        ["console", "user_add", "bob"]
    ]


# --- content as text ---------------------------------------------------------------------------


def rendered(markdown: str) -> str:
    """HTML that a CommonMark renderer makes of `markdown` (raw HTML allowed, as the worst
    case)."""
    markdown_it = pytest.importorskip("markdown_it")
    return markdown_it.MarkdownIt("commonmark", {"html": True}).render(markdown)


def test_plain_markdown_shows_exactly_the_text():
    for text in (HOSTILE, "1. item\n---\n> quote | a | b |\n    indented", "a\\*b `code` _x_"):
        html = rendered(plain(text))
        for tag in ("<a ", "<img", "<h1", "<h2", "<strong", "<em", "<ol", "<blockquote", "<code"):
            assert tag not in html, (tag, html)
        assert "evil.example" not in html or "href" not in html
    assert rendered(plain("$5 and $6")).strip() == "<p>$5 and $6</p>"
    assert plain(None) == ""


def test_model_answers_keep_links_but_load_no_images():
    answer = (
        "**Summary**: see [the docs](http://docs.example).\n\n![beacon](http://evil.example/p.gif)"
        ' <IMG SRC="http://evil.example/i.gif"> ![ref][r]\n\n[r]: http://evil.example/r.gif'
    )
    html = rendered(no_remote_content(answer))
    assert (
        "<img" not in html.lower() and "<strong>" in html and 'href="http://docs.example"' in html
    )


def test_diff_html_escapes_the_text():
    out = diff_html("<script>alert(1)</script> and <img src=x onerror=alert(2)>", "and")
    assert "<script" not in out and "<img" not in out
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in out
    assert "<mark>&lt;img</mark>" in out  # marked where it departs from the reference


# --- blind A/B stays blind ---------------------------------------------------------------------


def test_reviewers_chat_with_production_only_and_always_sample(con):
    import torch

    production = production_model(con)
    greedy = GenerationSettings(max_new_tokens=160)
    with pytest.raises(auth.PermissionDenied, match="production model"):
        chat_settings(con, REVIEWER, [production, "secret-finetune"], greedy)
    with pytest.raises(auth.PermissionDenied, match="log in"):
        chat_settings(con, None, [production], greedy)
    seeds = set()
    for _ in range(2):
        settings = chat_settings(con, REVIEWER, [production], greedy)
        assert settings.temperature >= 0.7 and settings.top_p == 0.95
        seeds.add(torch.initial_seed())
    assert len(seeds) == 2  # a fresh, unseeded generator for each reply
    assert settings == REVIEWER_CHAT
    assert chat_settings(con, ADMIN, [production, "secret-finetune"], greedy) == greedy
    with pytest.raises(auth.PermissionDenied, match="production model"):
        draft_settings(con, REVIEWER, "secret-finetune", greedy)
    drafting = draft_settings(con, REVIEWER, production, greedy)
    assert drafting.repetition_penalty != GenerationSettings().repetition_penalty  # ≠ evaluation


# --- pages -------------------------------------------------------------------------------------


@pytest.fixture
def reviewer_app(home):
    """The app with the sample set and a reviewer, logged in as that reviewer."""
    from engine.paths import db_path

    con = store.connect(db_path())  # same process: shares the app's database instance
    load_sample_if_empty(con)
    auth.create_user(con, "ada", "admin password", "admin")
    auth.create_user(con, "rita", "reviewer pass", "reviewer")
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=120).run()
    at.text_input(key="login_name").input("rita")
    at.text_input(key="login_password").input("reviewer pass")
    at.button[0].click().run()
    assert at.session_state["user"] == REVIEWER
    return at, con


def markdown_values(at) -> list[str]:
    """Every element whose text Streamlit renders as Markdown."""
    kinds = ("markdown", "caption", "subheader", "header", "title", "error", "warning", "info")
    return [e.value for kind in kinds for e in getattr(at, kind)]


def test_reviewer_pages_hide_and_refuse_admin_actions(reviewer_app):
    at, con = reviewer_app
    for page in ("duplicates", "users", "audit", "compare", "train"):
        with pytest.raises(ValueError, match="Could not find a navigation page"):
            at.switch_page(f"pages/{page}.py")

    at.switch_page("pages/curate.py").run()
    assert not at.exception, at.exception
    keys = {b.key for b in at.button}
    assert not {"curate_bulk_apply", "curate_bulk_tag_apply"} & keys
    assert not any("Bulk actions" in e.label for e in at.expander)
    assert len(at.dataframe[0].value) > 0  # the examples are there to curate one by one

    at.switch_page("pages/data.py").run()
    assert not at.exception, at.exception
    assert [t.label for t in at.tabs] == ["Import", "Overview"]
    assert not [t for t in at.text_input if t.key == "data_import_path"]  # no path to type
    assert not {"data_clean_apply", "data_export"} & {b.key for b in at.button}

    at.switch_page("pages/chat.py").run()
    assert not at.exception, at.exception
    assert not {"chat_model", "chat_model_b"} & {s.key for s in at.selectbox}
    assert not [n for n in at.number_input if n.key == "chat_temp"]  # settings hidden
    assert any("the production model" in c.value for c in at.caption)

    at.switch_page("pages/label.py").run()
    assert not at.exception, at.exception
    assert not [s for s in at.selectbox if s.key == "label_model"]


def test_markdown_in_titles_summaries_and_chats_shows_as_text(reviewer_app, home):
    import json

    from store import chat as chat_store

    at, con = reviewer_app
    path = home / "hostile.jsonl"
    path.write_text(
        json.dumps(
            {"title": HOSTILE, "text": f"{HOSTILE}. The claimant slipped.", "summary": HOSTILE}
        )
        + "\n"
    )
    import_file(con, path, source_name="![src](http://evil.example/s.gif)")
    (example_id,) = ex.ids_where(con, ex.ExampleFilter(search="claimant slipped"))

    at.switch_page("pages/curate.py").run()
    at.number_input(key="curate_open").set_value(example_id).run()
    assert not at.exception, at.exception
    assert at.subheader[0].value == plain(HOSTILE)
    assert at.text_area(key=f"curate_summary_{example_id}").value == HOSTILE  # editable as is
    at.text_area(key=f"curate_summary_{example_id}").input(HOSTILE + " edited")
    at.button(key=f"FormSubmitter:curate_edit_{example_id}-Save").click().run()
    assert not at.exception, at.exception
    assert ex.get_state(con, example_id)["updated_by"] == "rita"
    for value in markdown_values(at):  # the history shows both versions, the caption the source
        html = rendered(value)
        assert "<img" not in html and "<a " not in html and "<h1" not in html, value

    chat_store.add_message(con, "rita", "c1", "user", HOSTILE)
    chat_store.add_message(con, "rita", "c1", "assistant", HOSTILE, production_model(con))
    at.session_state["chat_conversation"] = "c1"
    at.switch_page("pages/chat.py").run()
    assert not at.exception, at.exception
    assert HOSTILE in [t.value for t in at.text]  # the user's message, as text
    answers = [m.value for m in at.markdown if "Heading" in m.value]
    assert answers and all("<img" not in rendered(a).lower() for a in answers)


def test_review_highlights_and_blind_summaries_show_as_text(reviewer_app):
    from store import labelling as label_store
    from tests.test_preference import make_pair

    at, con = reviewer_app
    doc_id = ex.page_examples(con, ex.ExampleFilter())["document_id"].iloc[0]
    document = con.execute("SELECT clean_text FROM documents WHERE id = ?", [doc_id]).fetchone()[0]
    sentence = next(s for s in document.split(". ") if len(s.split()) > 4)
    con.execute(
        "UPDATE documents SET clean_text = ? WHERE id = ?", [f"{HOSTILE}. {document}", doc_id]
    )
    label_store.add_drafts(
        con,
        pd.DataFrame(
            {
                "document_id": [doc_id],
                "summary": [f"{HOSTILE} {sentence}"],
                "model_id": "m",
                "prompt_version": 1,
                "run_id": "r",
                "n_generated_tokens": 4,
                "truncated": False,
            }
        ),
    )
    at.switch_page("pages/review.py").run()
    assert not at.exception, at.exception
    highlighted = [m.value for m in at.markdown if m.value.startswith(":orange-background[")]
    assert highlighted, "the sentence the draft draws on is highlighted"
    for value in markdown_values(at):
        html = rendered(value)
        assert "<img" not in html and "<a " not in html and "<h1" not in html, value

    make_pair(con, models=("base", "tuned"), run_ids=("eval-2", "eval-1"), n_docs=2)
    con.execute("UPDATE eval_results SET summary = ? || summary", [HOSTILE + " "])
    open_pair(con, "eval-1", "eval-2", ADMIN)
    at.switch_page("pages/blind.py").run()
    assert not at.exception, at.exception
    texts = [t.value for t in at.text]
    item = at.session_state["blind_item"]
    assert item["left_summary"] in texts and item["right_summary"] in texts
    for value in markdown_values(at):
        assert "<img" not in rendered(value), value


def test_reviewers_chat_samples_the_production_model_and_shows_no_images(reviewer_app, monkeypatch):
    import engine.models.generation
    import ui.common
    from store import chat as chat_store

    asked = []

    def fake_stream(model, tokenizer, messages, settings):
        asked.append(settings)
        yield "![beacon](http://evil.example/p.gif) "
        yield "The claimant **slipped**."

    monkeypatch.setattr(engine.models.generation, "stream_chat", fake_stream)
    monkeypatch.setattr(ui.common, "load_model_cached", lambda path, adapter: (None, None))
    at, con = reviewer_app
    at.switch_page("pages/chat.py").run()
    at.chat_input(key="chat_input").set_value("Summarize the case.").run()
    assert not at.exception, at.exception
    assert asked == [REVIEWER_CHAT]  # sampled, whatever the page's defaults would have been
    conversation = at.session_state["chat_conversation"]
    stored = chat_store.conversation(con, "rita", conversation)
    assert [(m["role"], m["model_id"]) for m in stored] == [
        ("user", None),
        ("assistant", production_model(con)),
    ]
    answers = [m.value for m in at.markdown if "slipped" in m.value]
    assert answers and all("<img" not in rendered(a) for a in answers)
    assert all("<strong>" in rendered(a) for a in answers)  # a model's Markdown still renders
