"""Duplicate detection over the store and its resolution.

`dedupe_documents` runs exact, near (MinHash LSH) and optionally semantic detection over every
document's cleaned text and stores the clusters; `resolve_cluster` keeps one example of a cluster
and rejects the rest; `resolve_all` does that for every cluster by a policy. All three are for
admins (`engine.auth.check` on the acting user) and go into the audit log.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass

import pandas as pd

from engine.audit import record
from engine.auth import CONSOLE, check
from engine.data.similarity import DedupeSettings, find_duplicates
from engine.errors import TuneloopError
from store import audit as audit_store
from store import documents as docs_store
from store import duplicates as dup_store
from store import examples as examples_store
from store import transaction
from store.splits import get_setting, set_setting

POLICIES = {
    "accepted": "keep an accepted example, else the longest",
    "longest": "keep the example with the longest document and summary",
    "newest": "keep the most recently imported example",
}
SETTINGS_KEY = "dedupe.settings"  # setting: the last detection's DedupeSettings


@dataclass
class DedupeReport:
    n_documents: int
    n_clusters: int
    n_in_clusters: int
    pairs: dict[str, int]
    seconds: float


def dedupe_documents(
    con, settings: DedupeSettings = DedupeSettings(), embed=None, user: dict | None = CONSOLE
) -> DedupeReport:
    check(user, "duplicates")
    started = time.perf_counter()
    ids, texts = [], []
    for batch in docs_store.iter_texts(con, "clean_text"):
        ids += list(batch["id"])
        texts += list(batch["text"])
    labels, pairs = find_duplicates(texts, settings, embed=embed)
    clusters = pd.DataFrame({"id": ids, "cluster_id": [ids[k] for k in labels]})
    pair_rows = pd.DataFrame(
        {
            "a": [ids[p.a] for p in pairs],
            "b": [ids[p.b] for p in pairs],
            "kind": [p.kind for p in pairs],
            "score": [float(p.score) for p in pairs],
        },
        columns=["a", "b", "kind", "score"],
    )
    with transaction(con):
        docs_store.set_clusters(con, clusters, pair_rows)
        set_setting(con, SETTINGS_KEY, json.dumps(asdict(settings)))
        n_clusters, n_in = dup_store.count_clusters(con)
        kinds = pair_rows["kind"].value_counts().to_dict()
        record(
            con,
            user,
            "dedupe",
            "all documents",
            settings=asdict(settings),
            documents=len(ids),
            after={"clusters": n_clusters, "documents_in_clusters": n_in, "pairs": kinds},
        )
    return DedupeReport(len(ids), n_clusters, n_in, kinds, time.perf_counter() - started)


def last_dedupe_settings(con) -> DedupeSettings:
    """The last detection's settings, so a re-run for new documents (before a split) finds the
    same kinds of duplicates the curator chose (semantic ones included)."""
    saved = get_setting(con, SETTINGS_KEY)
    return DedupeSettings(**json.loads(saved)) if saved else DedupeSettings()


def count_to_reject(con) -> int:
    """How many examples `resolve_all` would reject: all but one kept example per cluster,
    whatever the policy."""
    clusters = dup_store.cluster_summary(con, limit=2**31 - 1)
    return int((clusters["kept"] - 1).clip(lower=0).sum())


def resolve_cluster(con, cluster_id: str, keep_example_id: int, user: dict | None = CONSOLE) -> int:
    """Keep one example of the cluster (accepting it if pending); reject the others."""
    check(user, "duplicates")
    members = dup_store.cluster_members(con, cluster_id)
    if keep_example_id not in set(members["id"]):
        raise TuneloopError(f"Example {keep_example_id} is not in cluster {cluster_id}.")
    others = [int(i) for i in members["id"] if i != keep_example_id]
    ids = [keep_example_id, *others]
    with transaction(con):
        before = audit_store.status_counts(con, ids)
        if members.loc[members["id"] == keep_example_id, "status"].iloc[0] != "accepted":
            examples_store.set_status(con, [keep_example_id], "accepted", user["name"])
        n = examples_store.set_status(con, others, "rejected", user["name"])
        after = audit_store.status_counts(con, ids)
        record(
            con,
            user,
            "resolve_cluster",
            cluster_id,
            kept=keep_example_id,
            rejected=n,
            before=before,
            after=after,
        )
        return n


def resolve_all(con, policy: str, user: dict | None = CONSOLE) -> int:
    """Resolve every duplicate cluster by a policy; return how many examples were rejected."""
    check(user, "duplicates")
    if policy not in POLICIES:
        raise TuneloopError(f"Unknown policy {policy!r}; use one of {', '.join(POLICIES)}.")
    with transaction(con):
        before = audit_store.status_counts(con)
        n = dup_store.reject_all_but_one(con, policy, user["name"])
        after = audit_store.status_counts(con)
        record(con, user, "resolve_all", policy, rejected=n, before=before, after=after)
        return n
