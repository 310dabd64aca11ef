"""Duplicate detection over the store and its resolution.

`dedupe_documents` runs exact, near (MinHash LSH) and optionally semantic detection over every
document's cleaned text and stores the clusters; `resolve_cluster` keeps one example of a cluster
and rejects the rest; `resolve_all` does that for every cluster by a policy.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import pandas as pd

from engine.dedupe import DedupeSettings, find_duplicates
from store import documents as docs_store
from store import duplicates as dup_store
from store import examples as examples_store
from store import transaction

POLICIES = {
    "accepted": "keep an accepted example, else the longest",
    "longest": "keep the example with the longest document and summary",
    "newest": "keep the most recently imported example",
}


@dataclass
class DedupeReport:
    n_documents: int
    n_clusters: int
    n_in_clusters: int
    pairs: dict[str, int]
    seconds: float


def dedupe_documents(con, settings: DedupeSettings = DedupeSettings(), embed=None) -> DedupeReport:
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
    n_clusters, n_in = dup_store.count_clusters(con)
    kinds = pair_rows["kind"].value_counts().to_dict()
    return DedupeReport(len(ids), n_clusters, n_in, kinds, time.perf_counter() - started)


def resolve_cluster(con, cluster_id: str, keep_example_id: int, user: str | None = None) -> int:
    """Keep one example of the cluster (accepting it if pending); reject the others."""
    members = dup_store.cluster_members(con, cluster_id)
    if keep_example_id not in set(members["id"]):
        raise ValueError(f"Example {keep_example_id} is not in cluster {cluster_id}.")
    others = [int(i) for i in members["id"] if i != keep_example_id]
    with transaction(con):
        if members.loc[members["id"] == keep_example_id, "status"].iloc[0] != "accepted":
            examples_store.set_status(con, [keep_example_id], "accepted", user)
        return examples_store.set_status(con, others, "rejected", user)


def resolve_all(con, policy: str, user: str | None = None) -> int:
    """Resolve every duplicate cluster by a policy; return how many examples were rejected."""
    if policy not in POLICIES:
        raise ValueError(f"Unknown policy {policy!r}; use one of {', '.join(POLICIES)}.")
    with transaction(con):
        return dup_store.reject_all_but_one(con, policy, user)
