"""Journeys through the app in a real browser (Playwright driving Debian's headless Chromium),
as a person walks them: several records and pages in a row, reruns, a server restart, a second
user in another browser. After each step the test stops the server and reads what landed in the
store (tests/browser.py: `App.store`). Widget-state bugs — a text box still holding the
previous record's value — only show up this way.

    .venv/bin/python -m pytest tests/test_journeys.py -x -q -p no:cacheprovider

Skipped when Chromium (/usr/bin/chromium) or Playwright is missing.
"""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from tests.browser import (
    RERUN_MS,
    App,
    add_users,
    choose,
    data_folder,
    expect,
    go_to,
    open_number,
    register_production,
    sidebar,
    tick,
    wait_until_idle,
)
from tests.conftest import write_jsonl

pytestmark = pytest.mark.e2e
ADMIN, REVIEWER = "ada", "rita"
OPEN_ID = "Open example id (0: the row ticked above, else the first)"
JOB_MS = 420_000  # a training run, then two evaluations, on 2 busy cores


def examples_table(con) -> pd.DataFrame:
    """Every example's editable state, by id, as plain values that compare."""
    df = con.execute(
        """SELECT e.id, e.summary, e.status, e.split, e.tags, e.version, e.updated_by,
               e.origin, d.title
           FROM examples e JOIN documents d ON d.id = e.document_id ORDER BY e.id"""
    ).fetchdf()
    df["tags"] = df["tags"].map(list)
    return df.set_index("id")


def text(value) -> str:
    """A stored summary as its text box shows it (a missing one, NaN in pandas 3: empty)."""
    return value if isinstance(value, str) else ""


def history_since(con, after_id: int) -> pd.DataFrame:
    return con.execute(
        "SELECT example_id, field, before, after, username, batch_id FROM example_history "
        "WHERE id > ? ORDER BY id",
        [after_id],
    ).fetchdf()


def max_history_id(con) -> int:
    return con.execute("SELECT coalesce(max(id), 0) FROM example_history").fetchone()[0]


# --- (a) curate: three examples in turn, each with its own edits -----------------------------

EDITS = {  # example id -> what the admin types (status and tags left as they are when absent)
    1: {"summary": "Pemberton journey: a drunk driver, a tavern that kept serving him."},
    5: {
        "summary": "Espinoza journey: fence panel fell from a forklift; settled for $540,000.",
        "status": "needs-edit",
        "tags": ["checked", "journey"],
    },
    3: {"summary": "Abernathy journey: a pressure cooker lid blew off; the memo settles it."},
}


def test_curate_three_examples_in_turn_each_keeps_its_own_edits(browser, tmp_path):
    home = tmp_path / "home"
    with data_folder(home) as con:
        add_users(con, {ADMIN: "admin"})
        before = examples_table(con)
        history_start = max_history_id(con)
    with App(home, browser) as app:
        page = app.log_in(ADMIN, "curate")
        for example_id, edit in EDITS.items():
            old = before.loc[example_id]
            open_number(page, OPEN_ID, example_id)
            expect(page.get_by_role("heading", name=old["title"], exact=True)).to_be_visible()
            summary = page.get_by_role("textbox", name="Reference summary")
            # The editor holds this example's stored summary, never the one opened before.
            expect(summary).to_have_value(text(old["summary"]))
            summary.fill(edit["summary"])
            if "status" in edit:
                page.get_by_role("radiogroup", name="Status").get_by_text(
                    edit["status"], exact=True
                ).click()
                expect(page.get_by_role("radio", name=edit["status"])).to_be_checked()
            if "tags" in edit:
                tags = page.get_by_role("textbox", name="Tags (comma-separated)")
                tags.fill(", ".join(edit["tags"]))
            page.get_by_role("button", name="Save", exact=True).click()
            expect(page.get_by_text(f"Saved example {example_id}", exact=True)).to_be_visible()
            status = edit.get("status", old["status"])
            caption = re.compile(rf"^{status} · split .* · version {old['version'] + 1}\b")
            expect(page.get_by_text(caption)).to_be_visible()
            expect(summary).to_have_value(edit["summary"])

        with app.store() as con:
            after = examples_table(con)
            changes = history_since(con, history_start)
        for example_id, edit in EDITS.items():
            old, new = before.loc[example_id], after.loc[example_id]
            assert new["summary"] == edit["summary"], example_id
            assert new["status"] == edit.get("status", old["status"]), example_id
            assert new["tags"] == edit.get("tags", old["tags"]), example_id
            assert new["version"] == old["version"] + 1, example_id  # one save, one version
            assert new["updated_by"] == ADMIN, example_id
            mine = changes[changes["example_id"] == example_id]
            assert set(mine["field"]) == {"summary", *(k for k in ("status", "tags") if k in edit)}
            assert (mine["username"] == ADMIN).all()
            row = mine[mine["field"] == "summary"].iloc[0]
            assert (row["before"], row["after"]) == (old["summary"], edit["summary"])
        assert set(changes["example_id"]) == set(EDITS)
        others = after.index.difference(list(EDITS))
        pd.testing.assert_frame_equal(after.loc[others], before.loc[others])

        # After the restart the browser is still signed in (or signed in again), and example 1
        # opens with what was saved, not what the page last showed.
        open_number(page, OPEN_ID, 1)
        expect(page.get_by_role("heading", name=before.loc[1, "title"], exact=True)).to_be_visible()
        expect(page.get_by_role("textbox", name="Reference summary")).to_have_value(
            EDITS[1]["summary"]
        )
        open_number(page, OPEN_ID, 5)
        expect(page.get_by_role("radio", name="needs-edit")).to_be_checked()


# --- (b) review: two drafts in a row, each rated and corrected on its own --------------------


def test_review_two_drafts_in_a_row_nothing_carries_over(browser, tmp_path):
    from engine.models.registry import current_prompt
    from store.labelling import add_drafts, documents_to_draft

    home = tmp_path / "home"
    with data_folder(home) as con:
        add_users(con, {ADMIN: "admin", REVIEWER: "reviewer"})
        documents = documents_to_draft(con, limit=2)["document_id"].tolist()
        version, _ = current_prompt(con)
        texts = ["First draft: the claimant fell.", "Second draft: a different claim entirely."]
        add_drafts(
            con,
            pd.DataFrame(
                {
                    "document_id": documents,
                    "summary": texts,
                    "model_id": "tiny",
                    "prompt_version": version,
                    "run_id": "draft-journey",
                    "n_generated_tokens": 8,
                    "truncated": False,
                }
            ),
        )
        drafts = con.execute("SELECT id, document_id, summary FROM drafts ORDER BY id").fetchall()
    assert [d[2] for d in drafts] == texts
    corrections = [
        ("The claimant fell on a wet floor; rated four, faithful.", 4, True),
        ("A second, different correction: two stars, not faithful.", 2, False),
    ]

    with App(home, browser) as app:
        page = app.log_in(REVIEWER, "review")
        box = page.get_by_role("textbox", name="Summary (edit it to correct it)")
        stars = page.get_by_role("radiogroup", name="Feedback rating")
        for (draft_id, _, text), (correction, rating, faithful) in zip(drafts, corrections):
            expect(page.get_by_text(re.compile(rf"^Draft {draft_id} by tiny"))).to_be_visible()
            # A fresh form for this draft: its own text, no stars, nothing ticked.
            expect(box).to_have_value(text)
            expect(stars.get_by_role("radio", checked=True)).to_have_count(0)
            expect(page.get_by_role("checkbox", name="Faithful")).not_to_be_checked()
            box.fill(correction)
            stars.get_by_role("radio", name=f"{rating} out of 5 stars").click()
            if faithful:
                tick(page, "Faithful")
            page.get_by_role("button", name="Save as reference").click()
            saved = re.compile(rf"^Draft {draft_id} saved as accepted example \d+")
            expect(page.get_by_text(saved)).to_be_visible()
        expect(page.get_by_text("Your queue is empty.", exact=False)).to_be_visible()

        with app.store(restart=False) as con:
            reviews = con.execute(
                """SELECT draft_id, reviewer, action, rating, faithful, complete, concise,
                       edited_summary, example_id FROM reviews ORDER BY id"""
            ).fetchall()
            examples = {
                r[0]: r[1:]
                for r in con.execute(
                    """SELECT id, document_id, summary, status, origin, parent_id, updated_by
                       FROM examples WHERE origin = 'human-corrected'"""
                ).fetchall()
            }
            created = con.execute(
                "SELECT example_id, after, username FROM example_history WHERE field = 'created'"
            ).fetchall()
    assert [r[:8] for r in reviews] == [
        (draft_id, REVIEWER, "saved", rating, faithful, False, False, correction)
        for (draft_id, _, _), (correction, rating, faithful) in zip(drafts, corrections)
    ]
    assert len(examples) == 2
    for (draft_id, document_id, _), (correction, _, _), review in zip(drafts, corrections, reviews):
        assert examples[review[8]] == (
            document_id,
            correction,
            "accepted",
            "human-corrected",
            draft_id,
            REVIEWER,
        )
        assert (review[8], correction, REVIEWER) in created


# --- (c) the whole loop: import, accept, split, retrain, evaluate, compare, vote, chat -------

NEW_CASES = [
    {
        "title": f"Brackenridge journey case {n}",
        "document": (
            f"The claimant, {who}, was injured at the Brackenridge quarry on {when} when {what}. "
            "The operator had been warned in writing that the site was unsafe and did nothing. "
            f"The claimant was off work for {weeks} weeks and claims lost wages, medical costs "
            "and damages for pain and suffering from the operator and its insurer."
        ),
        "summary": f"{who.capitalize()} was hurt at the Brackenridge quarry when {what}; "
        f"the operator ignored written warnings and the claimant lost {weeks} weeks of work.",
    }
    for n, (who, when, what, weeks) in enumerate(
        [
            ("a delivery driver", "3 March 2023", "loose gravel gave way", 11),
            ("a surveyor", "14 June 2022", "a conveyor guard fell off", 6),
            ("a visiting engineer", "9 January 2024", "a ladder rung snapped", 9),
            ("a truck loader", "21 August 2021", "a hopper door swung open", 15),
        ],
        1,
    )
]


def prepare_loop(con, tiny_model):
    """The sample set, an admin and a reviewer, the tiny model as production model, and a tiny
    training config as the last good one, so one-click retrain takes seconds."""
    from engine.training.config import TrainConfig
    from engine.training.runs import remember_good_config

    add_users(con, {ADMIN: "admin", REVIEWER: "reviewer"})
    register_production(con, "tiny", tiny_model)
    config = TrainConfig(
        base_model=str(tiny_model),
        method="lora",
        max_steps=4,
        batch_size=4,
        max_length=256,
        max_new_tokens=8,
        rouge_eval_samples=0,
        eval_every_steps=2,
        eval_samples=4,
        early_stopping_patience=0,
        train_subset=8,
    )
    remember_good_config(con, config, "tiny")


def test_the_whole_loop_from_an_upload_to_a_promoted_model(browser, tmp_path, tiny_model):
    home = tmp_path / "home"
    with data_folder(home) as con:
        prepare_loop(con, tiny_model)
        before = examples_table(con)
    upload = write_jsonl(tmp_path / "new-cases.jsonl", NEW_CASES)

    with App(home, browser) as app:
        page = app.log_in(ADMIN, "data")
        # Import through the page, as a file picked in the browser.
        with page.expect_file_chooser() as chooser:
            page.get_by_role("button", name="Upload", exact=True).click()
        chooser.value.set_files(str(upload))
        page.get_by_role("button", name="Import", exact=True).click()
        expect(page.get_by_text(re.compile(r"4 new documents, 4 new examples"))).to_be_visible()
        app.note("imported")

        # Accept them in Curate with the bulk action (it asks first).
        go_to(page, "Curate")
        search = page.get_by_role("textbox", name="Search title, summary and document")
        search.fill("Brackenridge")
        search.press("Enter")
        page.get_by_text("Bulk actions on all 4 matching examples").click()
        choose(page, "Set status", "accepted")
        page.get_by_role("button", name="Apply", exact=True).click()
        expect(page.get_by_text("Accept 4 examples?")).to_be_visible()
        page.get_by_role("button", name="Confirm").click()
        accepted = re.compile(r"^Bulk action \d+: 4 examples set to accepted\.$")
        expect(page.get_by_text(accepted)).to_be_visible()
        with app.store() as con:
            table = examples_table(con)
        new = table.index.difference(before.index)
        assert sorted(table.loc[new, "title"]) == [case["title"] for case in NEW_CASES]
        assert (table.loc[new, "status"] == "accepted").all()
        assert table.loc[new, "split"].isna().all()  # not split yet: the Train page says so
        assert (table.loc[new, "updated_by"] == ADMIN).all()
        pd.testing.assert_frame_equal(table.loc[before.index], before)

        # Split from the Train page: new examples get a side, old ones keep theirs.
        go_to(page, "Train")
        expect(
            page.get_by_text(re.compile(r"^4 accepted examples are not split yet"))
        ).to_be_visible()
        page.get_by_role("button", name="Split now").click()
        expect(page.get_by_text(re.compile(r"^Split 4 new accepted examples"))).to_be_visible()
        with app.store() as con:
            table = examples_table(con)
        assert set(table.loc[new, "split"]) <= {"train", "validation", "test"}
        assert table.loc[new, "split"].notna().all(), table.loc[new, "split"]
        pd.testing.assert_series_equal(table.loc[before.index, "split"], before["split"])

        # One click retrains; then the user leaves Train and never opens it again.
        page.get_by_role("button", name="Retrain with the latest accepted data").click()
        queued = page.get_by_text(re.compile(r"^Queued train-[\w-]+\.$"))
        expect(queued).to_be_visible()
        run_id = queued.inner_text().removeprefix("Queued ").removesuffix(".")
        app.note(f"queued {run_id}")
        go_to(page, "Home", "Tuneloop")
        jobs = sidebar(page)
        expect(jobs.get_by_text(re.compile(r"eval · ")).first).to_be_visible(timeout=JOB_MS)
        app.note("evaluations started")
        expect(jobs.get_by_text("No jobs running.")).to_be_visible(timeout=JOB_MS)
        app.note("every job finished")
        with app.store() as con:
            run = con.execute(
                "SELECT state, reason, config, created_by FROM runs WHERE id = ?", [run_id]
            ).fetchone()
            model = con.execute(
                "SELECT kind, base_id, run_id FROM models WHERE id = ?", [run_id]
            ).fetchone()
            dataset = json.loads(run[2])["dataset_version"]
            frozen = con.execute(
                "SELECT example_id, split FROM dataset_examples WHERE dataset_id = ?", [dataset]
            ).fetchdf()
            evaluations = con.execute(
                """SELECT v.model_id, v.dataset_id, r.state, r.reason, v.run_id,
                       (SELECT list(example_id ORDER BY example_id) FROM eval_results x
                        WHERE x.run_id = v.run_id) AS scored
                   FROM evaluations v JOIN runs r ON r.id = v.run_id ORDER BY v.model_id"""
            ).fetchall()
            table = examples_table(con)
        assert run[0] == "succeeded", run[1]
        assert run[3] == ADMIN
        assert json.loads(run[2])["max_steps"] == 4  # the last good config: one click
        assert model == ("lora", "tiny", run_id)
        frozen = frozen.set_index("example_id")["split"]
        assert set(new) <= set(frozen.index), "the new examples were left out of training"
        assert (frozen.loc[new] == table.loc[new, "split"]).all()
        test_ids = sorted(frozen[frozen == "test"].index)
        assert [e[:3] for e in evaluations] == [
            ("tiny", dataset, "succeeded"),
            (run_id, dataset, "succeeded"),
        ], evaluations  # sorted by model id: "tiny" < "train-…"
        for evaluation in evaluations:
            assert list(evaluation[5]) == test_ids, evaluation  # the whole test split, only it
        eval_runs = {e[0]: e[4] for e in evaluations}

        # Compare is ready: A the production model, B the fine-tune. Promote B.
        go_to(page, "Compare")
        scored = f"{len(test_ids)} test documents scored by both, dataset v{dataset}"
        expect(page.get_by_text(scored)).to_be_visible(timeout=RERUN_MS)
        expect(page.get_by_role("combobox", name="A (reference model)")).to_have_value("tiny")
        expect(page.get_by_role("combobox", name="B (candidate)")).to_have_value(run_id)
        page.get_by_role("tab", name="Actions").click()
        promote = page.get_by_role("button", name=f"Promote {run_id} to production")
        promote.click()
        promoted = page.get_by_text(f"{run_id} is now the production model.")
        refused = page.get_by_text(re.compile(rf"^{run_id} does not beat the production model"))
        expect(promoted.or_(refused)).to_be_visible()
        reason = None
        if refused.is_visible():  # the tiny random model makes no promise: override, say why
            reason = "Journey test: a tiny random model, promoted to walk the loop."
            page.get_by_role("textbox", name=re.compile(r"^Override reason")).fill(reason)
            promote.click()
            expect(promoted).to_be_visible()
        page.get_by_role("tab", name="Blind preference").click()
        page.get_by_role("button", name="Open a blind A/B review of A and B").click()
        expect(page.get_by_text(re.compile(r"^Reviewers now see this pair"))).to_be_visible()
        app.note("promoted, blind pair open")

        # A reviewer, in a browser of their own, votes blind.
        reviewer = app.log_in(REVIEWER, "blind")
        expect(
            reviewer.get_by_text(re.compile(r"^Your votes: 0 · left to vote on: "))
        ).to_be_visible()
        expect(reviewer.get_by_role("button", name="Summary 2 is better")).to_be_visible()
        shown = " ".join(reviewer.get_by_role("main").inner_text().split())
        reviewer.get_by_role("textbox", name="Why? (optional)").fill("Reads better")
        reviewer.get_by_role("button", name="Summary 2 is better").click()
        expect(reviewer.get_by_text("Vote saved.")).to_be_visible()
        expect(reviewer.get_by_text(re.compile(r"^Your votes: 1 · "))).to_be_visible()
        with app.store() as con:
            promotion = con.execute(
                """SELECT model_id, previous_model_id, run_id, previous_run_id, override_reason,
                       promoted_by FROM promotions"""
            ).fetchall()
            production = con.execute(
                "SELECT value FROM settings WHERE key = 'production_model'"
            ).fetchone()[0]
            votes = con.execute(
                """SELECT p.example_id, p.run_a, p.run_b, p.left_run, p.winner_run, p.reason,
                       p.reviewer, l.summary, w.summary
                   FROM preferences p
                   JOIN eval_results l ON l.run_id = p.left_run AND l.example_id = p.example_id
                   JOIN eval_results w ON w.run_id = p.winner_run AND w.example_id = p.example_id"""
            ).fetchall()
        assert promotion == [(run_id, "tiny", eval_runs[run_id], eval_runs["tiny"], reason, ADMIN)]
        assert production == run_id
        assert len(votes) == 1, votes
        example_id, run_a, run_b, left, winner, why, who, left_summary, winner_summary = votes[0]
        assert {run_a, run_b} == set(eval_runs.values())
        assert example_id in test_ids
        assert winner in (run_a, run_b) and winner != left  # Summary 2 is the right-hand one
        assert (why, who) == ("Reads better", REVIEWER)
        # The vote went to the summary the reviewer saw on the right, as Summary 2.
        sides = re.search(r"Summary 1(.*)Summary 2(.*)Why\? \(optional\)", shown)
        assert sides is not None, shown
        assert [side.strip() for side in sides.groups()] == [
            " ".join(left_summary.split()),
            " ".join(winner_summary.split()),
        ]

        # Chat with both models side by side, from Compare. After the promotion the page comes
        # back with A on the model the fine-tune replaced, and B on the fine-tune.
        expect(page.get_by_role("combobox", name="A (reference model)")).to_have_value("tiny")
        expect(page.get_by_role("combobox", name="B (candidate)")).to_have_value(run_id)
        expect(page.get_by_text(scored)).to_be_visible()
        page.get_by_role("tab", name="Actions").click()
        page.get_by_role("button", name="Chat with both side by side").click()
        expect(page.get_by_role("heading", name="Chat", exact=True, level=1)).to_be_visible()
        expect(page.get_by_role("combobox", name="Model", exact=True)).to_have_value("tiny")
        side_by_side = page.get_by_role("combobox", name="Side by side with (optional)")
        expect(side_by_side).to_have_value(run_id)
        message = "Summarize the Brackenridge claims in one line."
        page.get_by_role("textbox", name="Message the model").fill(message)
        page.get_by_role("textbox", name="Message the model").press("Enter")
        expect(page.get_by_text(message, exact=True)).to_be_visible()
        expect(page.get_by_text(run_id, exact=True)).to_be_visible(timeout=RERUN_MS)
        wait_until_idle(page)
        app.note("both models answered")
        with app.store(restart=False) as con:
            messages = con.execute(
                """SELECT conversation, role, content, model_id FROM chat_messages
                   WHERE username = ? ORDER BY id""",
                [ADMIN],
            ).fetchall()
        assert [(m[1], m[3]) for m in messages] == [
            ("user", None),
            ("assistant", "tiny"),
            ("assistant", run_id),
        ]
        assert messages[0][2] == message
        assert len({m[0] for m in messages}) == 1  # one conversation
        assert all(isinstance(m[2], str) for m in messages[1:])
