"""Duplicates (admins): find exact, near and semantic duplicates; review a cluster side by side
with a diff and keep one, or resolve every cluster by a policy (after confirming how many
examples that rejects). Each action reruns the page, so every count shows the state after it."""

import difflib

import streamlit as st

from engine.data.dedupe import (
    POLICIES,
    count_to_reject,
    dedupe_documents,
    resolve_all,
    resolve_cluster,
)
from engine.data.similarity import DedupeSettings
from store import duplicates as dup_store
from ui.common import db, require
from ui.text import plain

require("duplicates")
con = db()
user = st.session_state["user"]
st.title("Duplicates")
if notice := st.session_state.pop("dup_notice", None):  # a toast before st.rerun() is lost
    st.toast(notice)

with st.form("dup_detect"):
    c = st.columns(3)
    threshold = c[0].slider("Near-duplicate threshold (Jaccard)", 0.5, 0.95, 0.8, 0.05)
    semantic = c[1].checkbox("Also semantic duplicates (MiniLM embeddings)")
    sem_threshold = c[2].slider("Semantic threshold (cosine)", 0.8, 0.99, 0.95, 0.01)
    if st.form_submit_button("Find duplicates", type="primary"):
        with st.spinner("Comparing documents…"):
            r = dedupe_documents(
                con,
                DedupeSettings(
                    threshold=threshold, semantic=semantic, semantic_threshold=sem_threshold
                ),
                user=user,
            )
        st.success(
            f"{r.n_clusters:,} clusters holding {r.n_in_clusters:,} of "
            f"{r.n_documents:,} documents ({r.seconds:.1f} s)."
        )

n_clusters, n_docs = dup_store.count_clusters(con)
st.caption(f"{n_clusters:,} duplicate clusters, {n_docs:,} documents in them.")
with st.expander("Resolve all clusters by a policy"):
    policy = st.radio("Keep", list(POLICIES), format_func=POLICIES.get, key="dup_policy")
    n_reject = count_to_reject(con)
    if st.button("Resolve all", key="dup_resolve_all", disabled=not n_reject):
        st.session_state["dup_confirm"] = True
    if st.session_state.get("dup_confirm") and n_reject:
        st.warning(f"Reject {n_reject:,} duplicate examples? Each cluster keeps one.")
        yes, no = st.columns(2)
        if yes.button(f"Reject {n_reject:,}", key="dup_confirm_yes", type="primary"):
            st.session_state["dup_confirm"] = False
            n = resolve_all(con, policy, user)
            st.session_state["dup_notice"] = f"Rejected {n:,} duplicate examples."
            st.rerun()
        if no.button("Cancel", key="dup_confirm_no"):
            st.session_state["dup_confirm"] = False
            st.rerun()

clusters = dup_store.cluster_summary(con, limit=200)
if clusters.empty:
    st.info("No duplicate clusters. Run detection above after importing data.")
    st.stop()
cluster_id = st.selectbox(
    "Cluster",
    clusters["cluster_id"],
    format_func=lambda c: "{} — {} documents, {} kept ({})".format(
        *clusters.set_index("cluster_id").loc[c, ["title", "documents", "kept", "kind"]]
    ),
    key="dup_cluster",
)
members = dup_store.cluster_members(con, cluster_id)
first = members["clean_text"].iloc[0]
for col, (_, m) in zip(st.columns(len(members)), members.iterrows()):
    with col:
        st.markdown(
            f"**Example {m['id']}** · {m['status']} · {plain(m['source'])} · {m['n_words']} words"
        )
        if col.button("Keep this, reject the rest", key=f"dup_keep_{m['id']}"):
            n = resolve_cluster(con, cluster_id, int(m["id"]), user)
            st.session_state["dup_notice"] = (
                f"Kept example {m['id']}, rejected {n:,} in this cluster."
            )
            st.rerun()
        st.text_area(
            "Summary", m["summary"] or "", height=120, disabled=True, key=f"dup_sum_{m['id']}"
        )
        diff = difflib.unified_diff(first.splitlines(), m["clean_text"].splitlines(), lineterm="")
        st.code("\n".join(diff) or m["clean_text"][:3000], language="diff")
