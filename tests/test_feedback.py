"""The loop from use back to data (issue 14): feedback from Chat and the API reviewed into
examples, review effort per model, what to label next, and the test split kept clear of
feedback once a model has been evaluated on it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import xxhash
from streamlit.testing.v1 import AppTest

import store
from engine.auth import CONSOLE, PermissionDenied, create_user, start_session
from engine.data.imports import import_file
from engine.data.keys import document_key
from engine.data.samples import load_sample_if_empty
from engine.labelling import feedback, feedback_review, ordering, savings
from engine.labelling.review import mark_unusable, next_draft, save_review
from engine.paths import db_path
from store import evals as evals_store
from store import examples as ex
from store import feedback as fb_store
from store import labelling as label_store
from store import registry as reg_store
from store import serving as serving_store
from store import splits as splits_store
from tests.conftest import ROOT, write_jsonl

REVIEWER = {"name": "rita", "role": "reviewer"}
DOCUMENT = (
    "The plaintiff, Mary Jones, slipped on a wet floor at the Fairview grocery store on "
    "3 May 2022 and broke her wrist. The store had no warning sign. After two months of "
    "physiotherapy she sued; the store settled for $40,000 before trial."
)


# --- Chat → feedback queue → Review → accepted example ------------------------------------


@pytest.fixture
def sign_in(home):
    """The app on a fresh install (sample set loaded), signed in through the session cookie
    the login form hands out (as tests/test_home.py does)."""

    def start(name: str, role: str) -> AppTest:
        con = store.connect(db_path())  # same process: the app's database instance
        create_user(con, name, "correct horse", role)
        at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=120)
        at.session_state["login_cookie"] = start_session(con, name)
        at.run()
        assert not at.exception, at.exception
        return at

    return start


def test_thumbs_down_and_correction_in_chat_end_as_an_accepted_chat_example(sign_in, monkeypatch):
    import engine.models.generation
    import ui.common

    def fake_stream(model, tokenizer, messages, settings):
        yield "Mary Jones slipped "
        yield "and the store paid $50,000."  # the model gets the amount wrong

    monkeypatch.setattr(engine.models.generation, "stream_chat", fake_stream)
    monkeypatch.setattr(ui.common, "load_model_cached", lambda path, adapter: (None, None))
    at = sign_in("rita", "reviewer")
    at.switch_page("pages/chat.py").run()
    at.text_area(key="chat_paste").input(DOCUMENT)
    at.button(key="chat_summarize").click().run()
    assert not at.exception, at.exception
    con = store.connect(db_path())
    (message_id,) = con.execute("SELECT id FROM chat_messages WHERE role = 'assistant'").fetchone()

    at.feedback(key=f"chat_fb_{message_id}").set_value(0).run()  # 👎
    assert not at.exception, at.exception
    (item,) = fb_store.by_messages(con, [message_id]).values()
    assert (item["rating"], item["status"], item["source"]) == (0, "queued", "chat")
    assert item["document"] == DOCUMENT.strip()  # a summary: it can become an example

    corrected = "Mary Jones slipped on a wet floor at a grocery store; it settled for $40,000."
    at.button(key=f"chat_correct_open_{message_id}").click().run()
    at.text_area(key=f"chat_correct_{message_id}").input(corrected)
    at.button(key=f"chat_correct_save_{message_id}").click().run()
    assert not at.exception, at.exception
    item = fb_store.get(con, item["id"])
    assert (item["rating"], item["corrected"]) == (0, corrected)
    assert corrected in [m.value for m in at.markdown]  # the answer now shows corrected
    at.button(key=f"chat_example_{message_id}").click().run()  # "Save as example"
    assert not at.exception, at.exception
    assert fb_store.get(con, item["id"])["proposed"]
    assert not [b for b in at.button if b.key == f"chat_example_{message_id}"]  # asked once

    sam = sign_in("sam", "reviewer")  # another reviewer works the queue
    sam.switch_page("pages/review.py").run()
    sam.radio(key="review_mode").set_value("Feedback").run()
    assert not sam.exception, sam.exception
    assert sam.text_area(key=f"review_fb_text_{item['id']}").value == corrected
    sam.button(key=f"FormSubmitter:review_fb_form_{item['id']}-Accept").click().run()
    assert not sam.exception, sam.exception

    item = fb_store.get(con, item["id"])
    assert (item["status"], item["reviewer"]) == ("accepted", "sam")
    assert item["seconds"] >= 0 and 0 < item["edit_distance"] < 1
    example = ex.get_example(con, int(item["example_id"]))
    assert (example["summary"], example["source"], example["status"]) == (
        corrected,
        "chat",
        "accepted",
    )
    assert example["origin"] == "human-corrected" and example["updated_by"] == "sam"
    assert example["clean_text"] == DOCUMENT.strip()
    assert example["split"] in ("train", "validation", "test")  # a side like any new example


def test_a_user_can_only_give_feedback_on_their_own_answers(con):
    from store import chat as chat_store

    chat_store.add_message(con, "ann", "c1", "user", "What is a tort?")
    chat_store.add_message(con, "ann", "c1", "assistant", "A civil wrong.", "m")
    with pytest.raises(ValueError, match="not one of your chat answers"):
        feedback.record_chat_feedback(con, REVIEWER, 2, rating=1)
    ann = {"name": "ann", "role": "reviewer"}
    with pytest.raises(ValueError, match="Only a summary"):
        feedback.record_chat_feedback(con, ann, 2, propose=True)
    fid = feedback.record_chat_feedback(con, ann, 2, rating=1)
    example_id, _ = feedback_review.accept(con, fid, REVIEWER)
    assert example_id is None  # a plain chat answer is kept as reviewed feedback only
    assert fb_store.get(con, fid)["status"] == "accepted"
    with pytest.raises(ValueError, match="already reviewed"):
        feedback.record_chat_feedback(con, ann, 2, rating=0)


# --- API requests → feedback queue -------------------------------------------------------


def api_row(key: str, path: str, request: str | None, response: str | None, status=200):
    return {
        "received": time.time(), "key_name": key, "method": "POST", "path": path,
        "status": status, "model_id": "prod", "prompt_tokens": 10, "completion_tokens": 5,
        "latency_ms": 12.0, "first_token_ms": 3.0, "finish_reason": "stop", "error": None,
        "request_text": request, "response_text": response,
    }  # fmt: skip


def test_opted_in_api_summaries_reach_the_queue_and_others_do_not(con):
    chat = json.dumps([{"role": "user", "content": f"Summarize it.\n\nDocument:\n{DOCUMENT}"}])
    rows = [
        api_row("opted", "/v1/completions", DOCUMENT, "Mary Jones slipped; $40,000."),
        api_row("quiet", "/v1/completions", None, None),  # a key without log_texts
        api_row("opted", "/v1/chat/completions", chat, "A grocery store slip."),
        api_row("opted", "/v1/chat/completions", '[{"role": "user", "content": "Hi"}]', "Hi!"),
        api_row("opted", "/v1/completions", DOCUMENT, None, status=503),
        api_row("opted", "/v1/completions", DOCUMENT, '["one", "two"]'),  # n=2: ambiguous
    ]
    serving_store.add_requests(con, rows, "dev:1", 100)
    assert feedback.sample_api_requests(con, rate=1.0) == 2
    queued = con.execute(
        "SELECT source, created_by, request_id, document, answer FROM feedback ORDER BY id"
    ).fetchall()
    assert queued == [
        ("api", "opted", 1, DOCUMENT, "Mary Jones slipped; $40,000."),
        ("api", "opted", 3, DOCUMENT, "A grocery store slip."),
    ]
    assert feedback.sample_api_requests(con, rate=1.0) == 0  # each request is looked at once
    serving_store.add_requests(con, rows[:1], "dev:1", 200)
    assert feedback.sample_api_requests(con, rate=0.0) == 0  # the sample rate is honoured
    share = np.mean([feedback._sampled(i, 0.25) for i in range(4000)])
    assert 0.22 < share < 0.28


# --- how sure the model was ---------------------------------------------------------------


def test_drafts_record_the_mean_log_probability_of_their_tokens(tiny_model, tmp_path, con):
    """The drafting worker writes each draft's mean token log-probability (what the model
    chose, scored under the distribution it chose from) and the app stores it."""
    import torch

    from engine.labelling.runs import ingest_drafts
    from engine.models.drafting import DraftConfig, run_drafting, write_run
    from engine.models.generation import GenerationSettings, load_model, prompt_ids

    settings = GenerationSettings(max_new_tokens=8, batch_size=2)
    documents = [{"document_id": f"d{i}", "text": crash(i)} for i in range(3)]
    write_run(tmp_path, DraftConfig(model=str(tiny_model), generation=settings), documents)
    assert run_drafting(tmp_path) == "succeeded"
    rows = [json.loads(line) for line in (tmp_path / "drafts.jsonl").read_text().splitlines()]
    model, tokenizer = load_model(str(tiny_model))
    for row in rows:
        ids, _ = prompt_ids(
            tokenizer, crash(int(row["document_id"][1])), DraftConfig.instruction, 10**6
        )
        prompt = torch.tensor([ids])
        out = model.generate(
            input_ids=prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=8,
            do_sample=False, pad_token_id=tokenizer.pad_token_id,
        )  # fmt: skip
        n = row["n_generated_tokens"]
        with torch.no_grad():
            logp = torch.log_softmax(model(out[:, : len(ids) + n]).logits[0].float(), -1)
        chosen = [logp[len(ids) - 1 + k, out[0, len(ids) + k]].item() for k in range(n)]
        assert row["mean_logprob"] == pytest.approx(sum(chosen) / n, abs=1e-4)
    run = {"id": "r1", "run_dir": str(tmp_path), "config": json.dumps(
        {"model_id": "tiny", "prompt_version": 1})}  # fmt: skip
    assert ingest_drafts(con, run) == 3
    stored = sorted(v for (v,) in con.execute("SELECT mean_logprob FROM drafts").fetchall())
    assert stored == pytest.approx(sorted(r["mean_logprob"] for r in rows))


# --- review effort ------------------------------------------------------------------------


def test_word_edit_distance():
    d = savings.word_edit_distance
    assert d("the cat sat", "the cat sat") == 0.0
    assert d("the cat sat down", "the dog sat down") == 0.25  # one substitution in four words
    assert d("the cat", "the cat sat down") == 0.5  # two insertions, over the longer text
    assert d("a b c", "") == 1.0 and d("", "") == 0.0
    assert d("one  two\nthree", "one two three") == 0.0  # words, not whitespace


def add_drafts(con, model_id: str, texts: list[str]) -> list[int]:
    docs = [xxhash.xxh3_128_hexdigest(f"{model_id}{i}".encode()) for i in range(len(texts))]
    from store import documents as docs_store

    docs_store.add_documents(
        con,
        pd.DataFrame(
            {"id": docs, "raw_text": [f"Document {d}." for d in docs], "title": None,
             "source": "t", "ref": "t", "n_words": 2, "import_id": 1}
        ),
    )  # fmt: skip
    label_store.add_drafts(
        con,
        pd.DataFrame(
            {"document_id": docs, "summary": texts, "model_id": model_id, "prompt_version": 1,
             "run_id": f"run-{model_id}", "n_generated_tokens": 4, "truncated": False}
        ),
    )  # fmt: skip
    return [r[0] for r in con.execute(
        "SELECT id FROM drafts WHERE model_id = ? ORDER BY id", [model_id]
    ).fetchall()]  # fmt: skip


def test_review_records_seconds_and_edit_distance_and_savings_aggregate_them(con):
    reg_store.register_model(con, "base", "base", "/m/base")
    reg_store.register_model(con, "tuned", "lora", "/m/tuned", base_id="base", run_id="t1")
    base = add_drafts(con, "base", ["a b c d", "a b c d", "a b c d", "a b c d"])
    tuned = add_drafts(con, "tuned", ["a b c d", "a b c d", "a b c d"])
    now = time.time()
    # base: one kept, two edited (1 of 4 words, 2 of 4), one unusable
    save_review(con, base[0], "ann", "a b c d", opened_at=now - 40)
    save_review(con, base[1], "ann", "a b c x", opened_at=now - 60)
    save_review(con, base[2], "ann", "a b y x", opened_at=now - 80)
    mark_unusable(con, base[3], "ann", 1, opened_at=now - 20)
    # tuned: two kept, one edited (1 of 4)
    save_review(con, tuned[0], "ann", "a b c d", opened_at=now - 10)
    save_review(con, tuned[1], "ann", "a b c d", opened_at=now - 20)
    save_review(con, tuned[2], "ann", "a b c z", opened_at=now - 30)
    stored = con.execute("SELECT seconds, edit_distance FROM reviews ORDER BY id").fetchall()
    assert [round(s) for s, _ in stored] == [40, 60, 80, 20, 10, 20, 30]
    assert [e for _, e in stored] == [0.0, 0.25, 0.5, None, 0.0, 0.0, 0.25]

    table = savings.savings_table(con).set_index("model")
    assert table.loc["base", "reviews"] == 4 and table.loc["tuned", "reviews"] == 3
    assert table.loc["base", "unchanged"] == pytest.approx(1 / 4)
    assert table.loc["tuned", "unchanged"] == pytest.approx(2 / 3)
    assert table.loc["base", "edit"] == 0.25 and table.loc["tuned", "edit"] == 0.0
    assert table.loc["base", "seconds"] == pytest.approx(50, abs=1)
    assert table.loc["tuned", "seconds"] == pytest.approx(20, abs=1)
    assert table.loc["tuned", "base"] == "base" and pd.isna(table.loc["base", "base"])
    tuned_row = table.loc["tuned"]
    assert tuned_row["unchanged_delta"] == pytest.approx(2 / 3 - 1 / 4)
    assert tuned_row["seconds_delta"] == pytest.approx(-30, abs=1)
    assert tuned_row["unchanged_low"] <= tuned_row["unchanged_delta"] <= tuned_row["unchanged_high"]
    assert pd.isna(table.loc["base", "unchanged_delta"])  # a base model has nothing to beat
    shown = savings.readable(savings.savings_table(con))
    assert shown.loc[shown["model"] == "tuned", "share accepted unchanged"].item() == "0.67"


def test_reviews_recorded_before_the_migration_still_count(con):
    (draft,) = add_drafts(con, "base", ["one two three four"])
    label_store.add_review(con, draft, "ann", "saved", edited_summary="one two three five")
    rows = savings.decisions(con)
    assert rows["edit"].tolist() == [0.25] and rows["seconds"].isna().all()


def test_savings_cli_on_a_fresh_store_says_no_reviews_yet(tmp_path):
    env = os.environ | {"TUNELOOP_HOME": str(tmp_path / "home")}
    done = subprocess.run(
        [sys.executable, "-m", "engine", "savings"], cwd=ROOT, env=env, capture_output=True,
        text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "no reviews yet"


# --- what to label next -------------------------------------------------------------------


def bag_of_words(texts: list[str]) -> np.ndarray:
    """A deterministic stand-in for MiniLM: hashed word counts, normalised."""
    out = np.zeros((len(texts), 512), dtype=np.float32)
    for i, text in enumerate(texts):
        for word in re.findall(r"[a-z]+", text.lower()):
            out[i, xxhash.xxh32_intdigest(word.encode()) % 512] += 1
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


CRASH = (
    "On {d} March the driver of a {car} ran a red light at {street} and struck the "
    "claimant's car; the claimant suffered {hurt} and the insurer disputed liability."
)
CARS = ["truck", "van", "bus", "taxi", "sedan", "jeep"]
HURTS = ["a broken arm", "whiplash", "a head injury", "bruised ribs"]
STREETS = ["Main Street", "Oak Avenue", "the ring road", "Mill Lane"]


def crash(i: int) -> str:
    return CRASH.format(d=i + 1, car=CARS[i % 6], street=STREETS[i % 4], hurt=HURTS[i % 4])


def test_next_puts_a_planted_unsure_and_a_planted_novel_document_first(con, tmp_path):
    training = [{"text": crash(i), "summary": f"A crash, case {i}."} for i in range(12)]
    import_file(con, write_jsonl(tmp_path / "train.jsonl", training), status="accepted")
    novel = "Whisk the eggs with sugar, fold in melted chocolate and bake the cake for an hour."
    todo = [crash(i) + " Filed again." for i in range(4)] + [novel]
    import_file(con, write_jsonl(tmp_path / "todo.jsonl", [{"text": t} for t in todo]))
    ids = {t: document_key(t) for t in todo}
    unsure_doc = ids[todo[2]]
    drafts = pd.DataFrame(
        {"document_id": [ids[t] for t in todo[:4]], "summary": "A crash.", "model_id": "m",
         "prompt_version": 1, "run_id": "r", "n_generated_tokens": 3, "truncated": False,
         "mean_logprob": [-0.2, -0.25, -3.5, -0.3]}
    )  # fmt: skip
    label_store.add_drafts(con, drafts)

    order = ordering.next_documents(con, 10, embed=bag_of_words)
    assert order["document_id"].tolist() == [unsure_doc, ids[novel]]  # the others: no reason
    assert order["reason"].iloc[0].startswith("unsure: mean token log-probability -3.50")
    assert order["reason"].iloc[1].startswith("unlike the training set")
    assert next_draft(con, "ann")["document_id"] == unsure_doc  # the review queue follows
    assert label_store.documents_to_draft(con)["document_id"].iloc[0] == ids[novel]

    with pytest.raises(PermissionDenied):
        ordering.set_order(con, REVIEWER, priority=False)
    ordering.set_order(con, CONSOLE, priority=False)  # plain order: oldest draft first
    first = con.execute("SELECT min(id) FROM drafts").fetchone()[0]
    assert next_draft(con, "bob")["id"] == first


def test_a_draft_the_fact_check_flags_is_ranked_with_its_reason(con, tmp_path):
    import_file(con, write_jsonl(tmp_path / "a.jsonl", [{"text": crash(i)} for i in range(3)]))
    docs = label_store.documents_to_draft(con, ordered=False)["document_id"].tolist()
    label_store.add_drafts(
        con,
        pd.DataFrame(
            {"document_id": docs, "summary": ["A crash.", "A crash; $2 million paid.", "A crash."],
             "model_id": "m", "prompt_version": 1, "run_id": "r", "n_generated_tokens": 3,
             "truncated": False}
        ),
    )  # fmt: skip
    ranked = ordering.rank(
        label_store.label_candidates(con, 10), None, None, label_store.draft_logprobs(con)
    )
    assert ranked["document_id"].tolist() == [docs[1]]
    assert (
        ranked["reason"].item() == "fact check: the draft adds 2million"
    )  # as the check writes it


def test_before_any_training_the_order_falls_back_to_diversity(con, tmp_path):
    texts = [
        crash(0),
        crash(0) + " Again.",
        novel := "A recipe for lemon tart with butter.",
        crash(1),
    ]
    import_file(con, write_jsonl(tmp_path / "a.jsonl", [{"text": t} for t in texts]))
    order = ordering.next_documents(con, 10, embed=bag_of_words)
    assert len(order) == 4 and order["reason"].str.startswith("diverse").all()
    by_id = {document_key(t): t for t in texts}
    ranked = [by_id[i] for i in order["document_id"]]
    assert ranked[0] != novel and ranked[1] == novel  # a typical one, then the farthest
    assert {ranked[0], ranked[2]} != {crash(0), crash(0) + " Again."}  # not two near-copies


@pytest.mark.slow
def test_next_cli_works_on_a_fresh_store_with_imported_documents(tmp_path):
    env = os.environ | {"TUNELOOP_HOME": str(tmp_path / "home")}
    path = write_jsonl(tmp_path / "docs.jsonl", [{"text": crash(i)} for i in range(3)])

    def run(*args):
        done = subprocess.run(
            [sys.executable, "-m", "engine", *args], cwd=ROOT, env=env, capture_output=True,
            text=True, timeout=600,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout

    run("import", str(path))
    lines = run("next", "--limit", "2").strip().splitlines()
    assert len(lines) == 2
    pattern = re.compile(r"^\s*\d+\s+\d\.\d{3}\s+[0-9a-f]{16}\s+diverse: ")
    assert all(pattern.match(line) for line in lines), lines


# --- feedback never enters an evaluated test split ----------------------------------------


def queue_summaries(con, n: int, prefix: str) -> list[int]:
    return [
        fb_store.add(
            con,
            {
                "source": "api",
                "document": f"{prefix} {i}: " + crash(i) + f" Reference {prefix}{i}x.",
                "prompt": "p",
                "model_id": "prod",
                "answer": f"A crash, {prefix} {i}.",
            },
        )  # fmt: skip
        for i in range(n)
    ]


def test_feedback_never_enters_an_evaluated_test_split(con):
    load_sample_if_empty(con)  # accepted and split
    version = splits_store.freeze_dataset(con, "evaluated")
    frozen = splits_store.dataset_rows(con, version)
    evals_store.add_evaluation(con, "eval-1", "prod", version, 1, {})  # locks the test split
    assert splits_store.is_test_locked(con)
    sides = set()
    for fid in queue_summaries(con, 15, "case"):
        example_id, _ = feedback_review.accept(con, fid, REVIEWER)
        sides.add(ex.get_example(con, example_id)["split"])
    assert sides <= {"train", "validation"} and "train" in sides
    assert splits_store.dataset_rows(con, version).equals(frozen)  # frozen versions are copies

    test_id = int(ex.page_examples(con, ex.ExampleFilter(splits=("test",)))["id"].iloc[0])
    test_doc = ex.get_example(con, test_id)["clean_text"]
    (fid,) = [
        fb_store.add(con, {"source": "chat", "document": test_doc + " Filed again.",
                           "prompt": "p", "answer": "A summary."})
    ]  # fmt: skip
    with pytest.raises(ValueError, match="near duplicate of\\) a test document"):
        feedback_review.accept(con, fid, REVIEWER)
    assert fb_store.get(con, fid)["status"] == "queued"  # nothing stored, still to decide
    n_documents = con.execute("SELECT count(*) FROM documents").fetchone()[0]
    same = fb_store.add(con, {"source": "chat", "document": test_doc, "prompt": "p",
                              "answer": "Another summary."})  # fmt: skip
    with pytest.raises(ValueError, match="test document"):  # "summarize example N" in Chat
        feedback_review.accept(con, same, REVIEWER)
    assert con.execute("SELECT count(*) FROM documents").fetchone()[0] == n_documents


def test_without_an_evaluation_feedback_is_dealt_to_every_side(con):
    load_sample_if_empty(con)  # the control: the same rule without the lock
    sides = [
        ex.get_example(con, feedback_review.accept(con, fid, REVIEWER)[0])["split"]
        for fid in queue_summaries(con, 15, "case")
    ]
    assert "test" in sides


def test_accepted_feedback_is_checked_like_an_import(con):
    load_sample_if_empty(con)
    (fid,) = queue_summaries(con, 1, "copy")
    document = fb_store.get(con, fid)["document"]
    example_id, flags = feedback_review.accept(con, fid, REVIEWER, text=document)
    assert "summary_copied" in flags  # flagged, never dropped
    (again,) = queue_summaries(con, 1, "copy")  # the same document and summary once more
    assert feedback_review.accept(con, again, REVIEWER, text=document)[0] == example_id
    assert ex.count_examples(con, ex.ExampleFilter(sources=("api",))) == 1
    (near,) = [
        fb_store.add(con, {"source": "api", "document": document + " Amended.", "prompt": "p",
                           "answer": "A crash with a van."})
    ]  # fmt: skip
    near_id, _ = feedback_review.accept(con, near, REVIEWER)
    group = {
        fb_store.group_of(con, ex.get_example(con, i)["document_id"]) for i in (example_id, near_id)
    }
    assert len(group) == 1  # one duplicate cluster: always on one side
    assert ex.get_example(con, near_id)["split"] == ex.get_example(con, example_id)["split"]


def test_migration_m009_upgrades_a_store_with_reviews(monkeypatch):
    import duckdb

    from store import db
    from store.migrations import MIGRATIONS, m009_feedback

    old = duckdb.connect(":memory:")
    monkeypatch.setattr(db, "MIGRATIONS", MIGRATIONS[: MIGRATIONS.index(m009_feedback)])
    db.migrate(old)
    old.execute("INSERT INTO reviews (draft_id, reviewer, action) VALUES (1, 'ann', 'saved')")
    monkeypatch.setattr(db, "MIGRATIONS", MIGRATIONS)
    later = MIGRATIONS[MIGRATIONS.index(m009_feedback) :]
    assert db.migrate(old) == [fn.__name__ for fn in later]  # m009 and those after it
    assert old.execute("SELECT seconds, edit_distance FROM reviews").fetchall() == [(None, None)]
    tables = {r[0] for r in old.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    assert {"feedback", "document_embeddings", "label_priority"} <= tables


def test_loop_page_shows_the_loop_and_sets_the_api_sample_rate(sign_in):
    con = store.connect(db_path())
    (fid,) = queue_summaries(con, 1, "loop")
    fb_store.update_queued(con, fid, {"corrected": "A crash on Main Street."})
    at = sign_in("ada", "admin")
    at.switch_page("pages/loop.py").run()
    assert not at.exception, at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Feedback items"] == "1" and metrics["Share corrected"] == "100%"
    assert metrics["Last retrain"] == "never" and metrics["Waiting for review"] == "1"
    at.slider(key="loop_sample_rate").set_value(0.5)
    at.button(key="FormSubmitter:loop_sampling-Save").click().run()
    assert not at.exception, at.exception
    assert feedback.sample_rate(con) == 0.5
    with pytest.raises(PermissionDenied):
        feedback.set_sample_rate(con, REVIEWER, 1.0)
    rita = sign_in("rita", "reviewer")
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        rita.switch_page("pages/loop.py")  # admins only


def test_review_and_label_pages_show_why_a_document_comes_first(sign_in):
    at = sign_in("rita", "reviewer")  # the app's first start loads the sample set
    con = store.connect(db_path())
    docs = label_store.documents_to_draft(con, ordered=False)["document_id"].tolist()
    assert len(docs) == 4  # the sample set's documents without a summary
    label_store.add_drafts(
        con,
        pd.DataFrame(
            {"document_id": docs, "summary": "A claim.", "model_id": "m", "prompt_version": 1,
             "run_id": "r", "n_generated_tokens": 3, "truncated": False,
             "mean_logprob": [-0.2, -0.3, -3.0, -0.25]}
        ),
    )  # fmt: skip
    ordering.refresh(con, embed=bag_of_words)
    at.switch_page("pages/review.py").run()
    assert not at.exception, at.exception
    draft_id = con.execute("SELECT id FROM drafts WHERE document_id = ?", [docs[2]]).fetchone()[0]
    assert at.text_area(key=f"review_summary_{draft_id}").value == "A claim."  # it comes first
    why = [c.value for c in at.caption if c.value.startswith("Why now:")]
    assert why and "unsure" in why[0]
    at.switch_page("pages/label.py").run()
    assert not at.exception, at.exception
    shown = at.dataframe[0].value
    assert shown["document_id"].iloc[0] == docs[2] and shown["reason"].iloc[0].startswith("unsure")
    assert not [t for t in at.toggle if t.key == "label_order"]  # reviewers cannot switch it


def test_the_report_and_the_model_history_carry_the_review_effort(con):
    from engine.evaluation.comparison import compare_runs
    from engine.evaluation.report import comparison_html
    from tests.test_evaluation import planted_store

    planted_store(con)  # evaluations of base, worse and better on one test split
    reg_store.register_model(con, "base", "base", "/m/base")
    reg_store.register_model(con, "better", "lora", "/m/better", base_id="base", run_id="t")
    for model_id, kept in (("base", "a b c x"), ("better", "a b c d")):
        (draft,) = add_drafts(con, model_id, ["a b c d"])
        save_review(con, draft, "ann", kept, opened_at=time.time() - 5)
    table = savings.savings_table(con, ["base", "better"])
    html = comparison_html(compare_runs(con, "eval-base", "eval-better"), savings=table)
    effort = html.split("<h2>Review effort</h2>")[1].split("<h2>")[0]
    assert "better" in effort and "+1.00 [+1.00, +1.00]" in effort  # kept unchanged vs base
    history = savings.model_history(con).set_index("model")
    assert history.loc["better", "base"] == "base"
    assert history.loc["better", "share accepted unchanged"] == 1.0
    assert history.loc["base", "median edit distance"] == 0.25
