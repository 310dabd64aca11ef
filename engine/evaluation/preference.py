"""Blind A/B human preference review between two evaluations' summaries of the same documents.

An admin opens a pair of succeeded evaluations (the Compare page calls `open_pair`). Every
logged-in user then gets, one at a time, a random document of an open pair they have not voted
on, with the two summaries in random order and nothing that says which model wrote which
(`next_item`), and votes left, right or tie (`record_vote`). `win_rates` turns the votes into a
win rate per model pair with a seeded bootstrap 95% CI; ties count half.

Opening and closing a pair is for admins (`engine.auth.check`, audited); anyone signed in votes.

Staying blind: evaluation summaries are greedy (deterministic), so a reviewer who could ask
each model of a pair for a greedy summary of the document in Chat would see which model wrote
which. `chat_settings` therefore gives reviewers' Chat the production model only, always
sampled (REVIEWER_CHAT: temperature 0.8, top p 0.95, settings not shown) from a freshly seeded
generator; admins, who see Compare anyway, keep every model and setting. Drafting (Label) is
the other way to make a model summarize a document: `draft_settings` gives reviewers the
production model only, with the drafting defaults (REVIEWER_DRAFTS: a repetition penalty that
evaluations never use, so a draft never equals an evaluation summary).

Used by pages/blind.py, pages/chat.py and the Compare page.
"""

from __future__ import annotations

import random
import threading

import pandas as pd

from engine.audit import record
from engine.auth import CONSOLE, PermissionDenied, can, check
from engine.models.generation import GenerationSettings
from engine.stats import bootstrap_ci
from store import evals as evals_store
from store import preferences as pref_store
from store import transaction

CHOICES = ("left", "right", "tie")
_COUNTS = ["votes", "a_wins", "b_wins", "ties", "b_win_rate", "low", "high"]
# One process serves every reviewer: check-then-write of the open pairs and of a vote must not
# interleave between two sessions.
_lock = threading.Lock()
# Reviewers' chat settings: sampled, so no greedy evaluation summary can be regenerated.
REVIEWER_CHAT = GenerationSettings(
    max_new_tokens=256, temperature=0.8, top_p=0.95, repetition_penalty=1.1
)
# Reviewers' drafting settings: the Label page's defaults; evaluations run without a penalty.
REVIEWER_DRAFTS = GenerationSettings(max_new_tokens=160, repetition_penalty=1.1)


def _canonical(run_a: str, run_b: str) -> tuple[str, str]:
    return (run_a, run_b) if run_a < run_b else (run_b, run_a)


def open_pair(con, run_a: str, run_b: str, user: dict | None = CONSOLE) -> None:
    """Open two succeeded evaluations that share scored documents for blind voting (again is a
    no-op). Admins only."""
    check(user, "compare")
    if run_a == run_b:
        raise ValueError("Pick two different evaluations to compare.")
    for run_id in (run_a, run_b):
        evaluation = evals_store.get_evaluation(con, run_id)
        if evaluation is None:
            raise ValueError(f"There is no evaluation {run_id!r}.")
        if evaluation["state"] != "succeeded":
            raise ValueError(
                f"Evaluation {run_id!r} is {evaluation['state']}: only a succeeded evaluation "
                "can be reviewed blind. Wait for it to finish, or pick another."
            )
    pair = _canonical(run_a, run_b)
    if not pref_store.shared_examples(con, *pair):
        raise ValueError(
            "These two evaluations share no scored test document: evaluate both models on the "
            "same dataset version first."
        )
    with _lock, transaction(con):
        pairs = pref_store.get_open_pairs(con)
        if pair not in pairs:
            pref_store.set_open_pairs(con, [*pairs, pair])
            record(con, user, "open_pair", " vs ".join(pair), open_pairs=len(pairs) + 1)


def close_pair(con, run_a: str, run_b: str, user: dict | None = CONSOLE) -> None:
    """Stop handing out this pair; its votes stay. Admins only."""
    check(user, "compare")
    pair = _canonical(run_a, run_b)
    with _lock, transaction(con):
        pref_store.set_open_pairs(con, [p for p in pref_store.get_open_pairs(con) if p != pair])
        record(con, user, "close_pair", " vs ".join(pair))


def chat_settings(
    con, user: dict | None, model_ids: list[str], settings: GenerationSettings
) -> GenerationSettings:
    """The settings `user` chats with `model_ids` under. Admins: as chosen. Reviewers: only the
    production model (PermissionDenied for any other), with REVIEWER_CHAT whatever was asked,
    from a freshly seeded generator (see the module's docstring: blind A/B stays blind)."""
    check(user, "chat")
    if can(user, "compare"):
        return settings
    _production_only(con, model_ids, "chats")
    fresh_sampling_seed()
    return REVIEWER_CHAT


def draft_settings(
    con, user: dict | None, model_id: str, settings: GenerationSettings | None
) -> GenerationSettings:
    """The settings `user` drafts with `model_id` under: admins as chosen; reviewers the
    production model only (PermissionDenied for another) with REVIEWER_DRAFTS."""
    check(user, "label")
    if can(user, "compare"):
        return settings or REVIEWER_DRAFTS
    _production_only(con, [model_id], "drafts")
    return REVIEWER_DRAFTS


def _production_only(con, model_ids: list[str], verb: str):
    from engine.models.registry import production_model

    production = production_model(con)
    if any(m != production for m in model_ids):
        raise PermissionDenied(
            f"Your account {verb} with the production model ({production}) only: ask an admin "
            "to compare other models."
        )


def fresh_sampling_seed():
    """Seed torch's generators from the operating system's randomness, so sampled replies
    cannot be replayed by anyone who knows the process's history."""
    import torch

    torch.seed()


def open_pairs(con) -> list[tuple[str, str]]:
    return pref_store.get_open_pairs(con)


def _pending(con, reviewer: str) -> list[tuple[tuple[str, str], int]]:
    return [
        (pair, example_id)
        for pair in open_pairs(con)
        for example_id in pref_store.shared_examples(con, *pair, reviewer=reviewer)
    ]


def pending_count(con, reviewer: str) -> int:
    """How many documents of the open pairs this reviewer has still to vote on."""
    return len(_pending(con, reviewer))


def next_item(con, reviewer: str, seed: int | None = None) -> dict | None:
    """A random unvoted document of an open pair with its two summaries on random sides, or
    None when this reviewer has voted on everything open."""
    rng = random.Random(seed)
    pending = _pending(con, reviewer)
    if not pending:
        return None
    (run_a, run_b), example_id = rng.choice(pending)
    texts = pref_store.pair_texts(con, run_a, run_b, example_id)
    sides = [(run_a, texts["summary_a"]), (run_b, texts["summary_b"])]
    rng.shuffle(sides)
    return {
        "example_id": example_id,
        "title": texts["title"],
        "document": texts["document"],
        "left_summary": sides[0][1],
        "right_summary": sides[1][1],
        "left_run": sides[0][0],
        "right_run": sides[1][0],
        "run_a": run_a,
        "run_b": run_b,
    }


def record_vote(con, item: dict, choice: str, reviewer: str, reason: str = "") -> int:
    """Store a vote on an item from `next_item`: "left", "right" or "tie". Returns its id."""
    if choice not in CHOICES:
        raise ValueError(f"Unknown choice {choice!r}: vote left, right or tie.")
    run_a, run_b = item["run_a"], item["run_b"]
    if {item["left_run"], item["right_run"]} != {run_a, run_b}:
        raise ValueError("This item's sides do not match its pair: fetch a new item.")
    winner = {"left": item["left_run"], "right": item["right_run"], "tie": None}[choice]
    with _lock, transaction(con):
        if (run_a, run_b) not in pref_store.get_open_pairs(con):
            raise ValueError("An admin closed this comparison: your vote was not stored.")
        if pref_store.has_vote(con, run_a, run_b, item["example_id"], reviewer):
            raise ValueError(
                f"{reviewer} has already voted on this document for this comparison: "
                "one vote per reviewer and document."
            )
        return pref_store.add_preference(
            con,
            item["example_id"],
            run_a,
            run_b,
            item["left_run"],
            winner,
            reason.strip() or None,
            reviewer,
        )


def _scored_votes(con) -> pd.DataFrame:
    """Votes with the pair named by model ids in sorted order and B's score (1 / 0.5 / 0)."""
    df = pref_store.votes(con)
    swap = df["model_a"] > df["model_b"]
    run_b = df["run_b"].where(~swap, df["run_a"])
    model_a = df["model_a"].where(~swap, df["model_b"])
    model_b = df["model_b"].where(~swap, df["model_a"])
    score = (df["winner_run"] == run_b).astype(float).where(df["winner_run"].notna(), 0.5)
    return df.assign(model_a=model_a, model_b=model_b, score=score)


def _summarise(group: pd.DataFrame, seed: int) -> pd.Series:
    ci = bootstrap_ci(group["score"].to_numpy(), seed=seed)
    return pd.Series(
        {
            "votes": len(group),
            "a_wins": int((group["score"] == 0).sum()),
            "b_wins": int((group["score"] == 1).sum()),
            "ties": int((group["score"] == 0.5).sum()),
            "b_win_rate": ci.mean,
            "low": ci.low,
            "high": ci.high,
        }
    )


def _rates(con, keys: list[str], seed: int) -> pd.DataFrame:
    df = _scored_votes(con)
    if df.empty:
        return pd.DataFrame(columns=[*keys, *_COUNTS])
    rows = [
        {**dict(zip(keys, key)), **_summarise(group, seed)}
        for key, group in df.groupby(keys, sort=True)
    ]
    out = pd.DataFrame(rows, columns=[*keys, *_COUNTS])
    return out.astype({c: int for c in ("votes", "a_wins", "b_wins", "ties")})


def win_rates(con, seed: int = 0) -> pd.DataFrame:
    """One row per model pair (model_a < model_b): votes, a_wins, b_wins, ties, b_win_rate
    (ties count half) and its bootstrap 95% CI (low, high), reproducible for a seed."""
    return _rates(con, ["model_a", "model_b"], seed)


def win_rates_by_reviewer(con, seed: int = 0) -> pd.DataFrame:
    """`win_rates` per reviewer and model pair."""
    return _rates(con, ["reviewer", "model_a", "model_b"], seed)
