"""Blind A/B preference review: opening pairs, handing out items, votes, win rates, and the
page never showing which model wrote which summary."""

from __future__ import annotations

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

import store
from engine.evaluation import preference as pref
from engine.stats import bootstrap_ci
from store import evals as evals_store
from store import runs as runs_store
from tests.conftest import ROOT

SECRET_MODELS = ("secret-base-model", "secret-finetune")
SECRET_RUNS = ("eval-secret-run-1", "eval-secret-run-2")


def add_dataset(con, n_docs: int) -> int:
    dataset_id = con.execute(
        "INSERT INTO dataset_versions (note, n_test) VALUES ('test', ?) RETURNING id", [n_docs]
    ).fetchone()[0]
    for i in range(1, n_docs + 1):
        con.execute(
            "INSERT INTO dataset_examples VALUES (?, ?, 'test', ?, ?, ?)",
            [dataset_id, i, f"Document {i}: a worker fell from a ladder.", "Reference.", f"T{i}"],
        )
    return dataset_id


def add_evaluation(
    con, run_id: str, model_id: str, dataset_id: int, examples, state: str = "succeeded"
):
    """A succeeded (or `state`) eval run; its summaries start with a label (Tuned / Plain)
    that is not the model id, so tests tell them apart without it."""
    runs_store.add_run(con, run_id, "eval", f"/runs/{run_id}", {"model": f"/models/{model_id}"})
    runs_store.set_state(con, run_id, state)
    evals_store.add_evaluation(con, run_id, model_id, dataset_id, 1, {})
    rows = pd.DataFrame(
        {
            "example_id": list(examples),
            "summary": [f"{summary_label(model_id)} summary of document {i}." for i in examples],
            **{c: 0.0 for c in evals_store.SCORE_COLUMNS},
            "unsupported": "[]",
        }
    )
    evals_store.add_results(con, run_id, rows)


def summary_label(model_id: str) -> str:
    return "Tuned" if "tune" in model_id else "Plain"


def make_pair(con, models=("base", "tuned"), run_ids=("eval-2", "eval-1"), n_docs=4):
    """Two succeeded evaluations on the same documents. By default the run ids sort the other
    way round from the model ids, so pairs are named by model, not by run order."""
    dataset_id = add_dataset(con, n_docs)
    for run_id, model_id in zip(run_ids, models):
        add_evaluation(con, run_id, model_id, dataset_id, range(1, n_docs + 1))
    return dataset_id


def run_of(item: dict, label: str) -> str:
    """The run whose summary (shown on either side) carries this label."""
    return item["left_run"] if item["left_summary"].startswith(label) else item["right_run"]


def test_open_pair_checks_and_is_idempotent(con):
    dataset_id = make_pair(con)
    add_evaluation(con, "eval-3", "failed-model", dataset_id, [1, 2], state="failed")
    add_evaluation(con, "eval-4", "other", dataset_id, [])
    with pytest.raises(ValueError, match="no evaluation"):
        pref.open_pair(con, "eval-1", "nope")
    with pytest.raises(ValueError, match="failed"):
        pref.open_pair(con, "eval-1", "eval-3")
    with pytest.raises(ValueError, match="share no scored"):
        pref.open_pair(con, "eval-1", "eval-4")
    with pytest.raises(ValueError, match="two different"):
        pref.open_pair(con, "eval-1", "eval-1")
    assert pref.open_pairs(con) == []
    pref.open_pair(con, "eval-2", "eval-1")
    pref.open_pair(con, "eval-1", "eval-2")
    assert pref.open_pairs(con) == [("eval-1", "eval-2")]
    pref.close_pair(con, "eval-2", "eval-1")
    assert pref.open_pairs(con) == []
    assert pref.next_item(con, "rita") is None


def test_next_item_and_votes_store_the_winner(con):
    make_pair(con)
    assert pref.next_item(con, "rita") is None  # nothing open yet
    pref.open_pair(con, "eval-1", "eval-2")
    item = pref.next_item(con, "rita", seed=1)
    assert (item["run_a"], item["run_b"]) == ("eval-1", "eval-2")
    assert {item["left_run"], item["right_run"]} == {"eval-1", "eval-2"}
    n = item["example_id"]
    assert item["title"] == f"T{n}" and item["document"].startswith(f"Document {n}:")
    expected = {"eval-1": "Tuned", "eval-2": "Plain"}  # eval-1 is the tuned model
    assert item["left_summary"] == f"{expected[item['left_run']]} summary of document {n}."
    assert item["right_summary"] == f"{expected[item['right_run']]} summary of document {n}."

    pid = pref.record_vote(con, item, "right", "rita", "  more complete ")
    row = con.execute(
        "SELECT id, example_id, run_a, run_b, left_run, winner_run, reason, reviewer "
        "FROM preferences"
    ).fetchall()
    assert row == [
        (pid, n, "eval-1", "eval-2", item["left_run"], item["right_run"], "more complete", "rita")
    ]
    tie = pref.next_item(con, "rita", seed=1)
    assert tie["example_id"] != n
    pref.record_vote(con, tie, "tie", "rita")
    assert con.execute(
        "SELECT winner_run, reason FROM preferences WHERE example_id = ?", [tie["example_id"]]
    ).fetchall() == [(None, None)]
    with pytest.raises(ValueError, match="left, right or tie"):
        pref.record_vote(con, pref.next_item(con, "rita"), "both", "rita")


def test_sides_vary_with_the_seed_and_the_winner_follows_the_summary(con):
    make_pair(con, n_docs=2)
    pref.open_pair(con, "eval-1", "eval-2")
    lefts = set()
    for seed in range(12):
        reviewer = f"reviewer{seed}"
        item = pref.next_item(con, reviewer, seed=seed)
        assert item == pref.next_item(con, reviewer, seed=seed)  # a seed reproduces the item
        lefts.add(item["left_run"])
        choice = "left" if item["left_summary"].startswith("Tuned") else "right"
        pid = pref.record_vote(con, item, choice, reviewer)
        winner = con.execute("SELECT winner_run FROM preferences WHERE id = ?", [pid]).fetchone()
        assert winner == ("eval-1",)  # the tuned model's run, whichever side it was on
    assert lefts == {"eval-1", "eval-2"}


def test_a_second_vote_is_refused_and_a_finished_reviewer_gets_none(con):
    make_pair(con, n_docs=3)
    pref.open_pair(con, "eval-1", "eval-2")
    item = pref.next_item(con, "rita", seed=0)
    pref.record_vote(con, item, "left", "rita")
    with pytest.raises(ValueError, match="already voted"):
        pref.record_vote(con, item, "right", "rita")
    voted = {item["example_id"]}
    while (item := pref.next_item(con, "rita")) is not None:
        assert item["example_id"] not in voted
        voted.add(item["example_id"])
        pref.record_vote(con, item, "tie", "rita")
    assert voted == {1, 2, 3}
    assert pref.pending_count(con, "rita") == 0
    assert pref.next_item(con, "bob") is not None  # another reviewer still has all three
    assert con.execute("SELECT count(*) FROM preferences").fetchone() == (3,)


def test_a_vote_on_a_closed_pair_is_refused(con):
    make_pair(con)
    pref.open_pair(con, "eval-1", "eval-2")
    item = pref.next_item(con, "rita")
    pref.close_pair(con, "eval-1", "eval-2")
    with pytest.raises(ValueError, match="closed"):
        pref.record_vote(con, item, "left", "rita")
    assert con.execute("SELECT count(*) FROM preferences").fetchone() == (0,)


def vote_as(con, reviewer: str, choices: dict[int, str]):
    """Vote by document: 'tuned', 'base' or 'tie' (the side is looked up from the summary)."""
    while (item := pref.next_item(con, reviewer)) is not None:
        want = choices[item["example_id"]]
        if want == "tie":
            pref.record_vote(con, item, "tie", reviewer)
        else:
            label = "Tuned" if want == "tuned" else "Plain"
            side = "left" if item["left_run"] == run_of(item, label) else "right"
            pref.record_vote(con, item, side, reviewer)


def test_win_rates_count_ties_half_with_a_reproducible_ci(con):
    assert list(pref.win_rates(con).columns) == [
        "model_a",
        "model_b",
        *("votes", "a_wins", "b_wins", "ties", "b_win_rate", "low", "high"),
    ]
    make_pair(con)
    pref.open_pair(con, "eval-1", "eval-2")
    vote_as(con, "rita", {1: "tuned", 2: "tuned", 3: "base", 4: "tie"})
    vote_as(con, "bob", {1: "base", 2: "base", 3: "base", 4: "tuned"})

    rates = pref.win_rates(con, seed=3)
    assert len(rates) == 1
    row = rates.iloc[0]
    # Named by model id in sorted order, whatever order the runs sort in.
    assert (row["model_a"], row["model_b"]) == ("base", "tuned")
    assert (row["votes"], row["a_wins"], row["b_wins"], row["ties"]) == (8, 4, 3, 1)
    assert row["b_win_rate"] == pytest.approx(3.5 / 8)
    scores = [  # B (tuned) is eval-1; in vote order, as win_rates resamples them
        score
        for (score,) in con.execute(
            "SELECT CASE WHEN winner_run IS NULL THEN 0.5 WHEN winner_run = 'eval-1' THEN 1 "
            "ELSE 0 END FROM preferences ORDER BY id"
        ).fetchall()
    ]
    ci = bootstrap_ci(scores, seed=3)
    assert (row["low"], row["high"]) == pytest.approx((ci.low, ci.high))
    assert row["low"] <= row["b_win_rate"] <= row["high"] and row["low"] < row["high"]
    pd.testing.assert_frame_equal(rates, pref.win_rates(con, seed=3))

    by_reviewer = pref.win_rates_by_reviewer(con, seed=3).set_index("reviewer")
    assert list(by_reviewer.index) == ["bob", "rita"]
    assert by_reviewer.loc["rita", ["votes", "a_wins", "b_wins", "ties"]].tolist() == [4, 1, 2, 1]
    assert by_reviewer.loc["rita", "b_win_rate"] == pytest.approx(2.5 / 4)
    assert by_reviewer.loc["bob", "b_win_rate"] == pytest.approx(1 / 4)


def rendered_text(at: AppTest) -> str:
    """Everything the page sent to the browser: every element's and block's proto (labels,
    values, bodies, help, widget ids with their keys, form ids) in the main area, the sidebar
    and the event area (toasts)."""
    parts = []
    for node in at._tree:
        proto = getattr(node, "proto", None)
        if proto is not None:
            parts.append(str(proto))
        for attr in ("value", "label", "body"):
            try:
                parts.append(str(getattr(node, attr)))
            except Exception:  # not every node has every attribute
                pass
    return "\n".join(parts)


@pytest.fixture
def reviewer_app(home, monkeypatch):
    """The app on an empty install with a reviewer account, logged in as that reviewer, and
    the store it uses."""
    from engine.auth import create_user
    from engine.paths import db_path

    monkeypatch.setenv("TUNELOOP_SAMPLE", "0")
    con = store.connect(db_path())  # same process: shares the app's database instance
    create_user(con, "rita", "reviewer pass", "reviewer")
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=120).run()
    at.text_input(key="login_name").input("rita")
    at.text_input(key="login_password").input("reviewer pass")
    at.button[0].click().run()
    assert at.session_state["user"] == {"name": "rita", "role": "reviewer"}
    return at, con


def test_blind_page_never_reveals_the_models(reviewer_app):
    at, con = reviewer_app
    at.switch_page("pages/blind.py").run()
    assert not at.exception, at.exception
    assert "Compare page" in at.info[0].value  # nothing open yet

    make_pair(con, models=SECRET_MODELS, run_ids=SECRET_RUNS, n_docs=3)
    pref.open_pair(con, *SECRET_RUNS)
    at.run()
    assert not at.exception, at.exception
    item = at.session_state["blind_item"]
    page = rendered_text(at)
    assert "Summary 1" in page and "Summary 2" in page
    assert item["document"] in page
    assert page.index(item["left_summary"]) < page.index(item["right_summary"])
    for secret in ("secret", *SECRET_MODELS, *SECRET_RUNS, "/models/", "/runs/"):
        assert secret not in page, f"{secret!r} is on the page before the vote"

    at.run()  # a rerun keeps the same item and sides
    assert at.session_state["blind_item"] == item

    at.text_input(key="blind_reason").input("Names the parties.")
    at.button(key="blind_left").click().run()
    assert not at.exception, at.exception
    assert con.execute(
        "SELECT example_id, left_run, winner_run, reason, reviewer FROM preferences"
    ).fetchall() == [
        (item["example_id"], item["left_run"], item["left_run"], "Names the parties.", "rita")
    ]
    assert at.session_state["blind_item"]["example_id"] != item["example_id"]
    assert "secret" not in rendered_text(at)  # no reveal afterwards either
    assert "Your votes: 1" in rendered_text(at)
