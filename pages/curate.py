"""Curate: browse, search and filter examples, edit summaries, accept/reject/tag in bulk.

Pages through the store in SQL (50 rows at a time), so it stays fast with 100,000 examples.
"""

import streamlit as st

from engine.quality import FLAG_DESCRIPTIONS
from pages._ui import db
from store import examples as ex

PAGE_SIZE = 50
con = db()
st.title("Curate")


def filter_ui() -> ex.ExampleFilter:
    with st.sidebar:
        st.subheader("Filter")
        search = st.text_input("Search title, summary and document", key="curate_search")
        statuses = st.multiselect("Status", ex.STATUSES, key="curate_statuses")
        splits = st.multiselect("Split", (*ex.SPLITS, "none"), key="curate_splits")
        sources = st.multiselect(
            "Source", ex.counts_by(con, "source")["source"].tolist(), key="curate_sources"
        )
        flag = st.selectbox("Flag", ["", "any", "none", *FLAG_DESCRIPTIONS], key="curate_flag")
        tag = st.selectbox("Tag", ["", *ex.tags_in_use(con)], key="curate_tag")
        words = st.slider("Document words", 0, 5000, (0, 5000), step=50, key="curate_words")
        dups = st.checkbox("Only duplicates", key="curate_dups")
    return ex.ExampleFilter(
        statuses=tuple(statuses),
        sources=tuple(sources),
        splits=tuple(splits),
        flag=flag or None,
        tag=tag or None,
        search=search or None,
        min_words=words[0] or None,
        max_words=None if words[1] >= 5000 else words[1],
        duplicates_only=dups,
    )


def bulk_ui(f: ex.ExampleFilter, total: int):
    with st.expander(f"Bulk actions on all {total:,} matching examples"):
        c = st.columns([2, 1, 2, 1])
        status = c[0].selectbox("Set status", ex.STATUSES, key="curate_bulk_status")
        if c[1].button("Apply", key="curate_bulk_apply"):
            n = ex.set_status(con, ex.ids_where(con, f), status, "curator")
            st.toast(f"{n:,} examples set to {status}.")
        tag = c[2].text_input("Add tag", key="curate_bulk_tag")
        if c[3].button("Tag", key="curate_bulk_tag_apply") and tag.strip():
            n = ex.add_tag(con, ex.ids_where(con, f), tag.strip())
            st.toast(f"Tagged {n:,} examples with {tag.strip()!r}.")


def editor_ui(example_id: int):
    row = ex.get_example(con, example_id)
    if row is None:
        st.warning(f"No example {example_id}.")
        return
    st.subheader(row["title"] or f"Example {example_id}")
    flags = ", ".join(FLAG_DESCRIPTIONS.get(f, f) for f in row["flags"])
    st.caption(f"{row['status']} · split {row['split'] or '—'} · {row['source']} · {flags}")
    left, right = st.columns(2)
    left.text_area("Document (cleaned)", row["clean_text"], height=400, disabled=True)
    with right.form(f"curate_edit_{example_id}"):
        summary = st.text_area(
            "Reference summary", row["summary"] or "", height=250, key="curate_summary"
        )
        status = st.radio(
            "Status",
            ex.STATUSES,
            ex.STATUSES.index(row["status"]),
            horizontal=True,
            key="curate_status",
        )
        tags = st.text_input("Tags (comma-separated)", ", ".join(row["tags"]), key="curate_tags")
        if st.form_submit_button("Save", type="primary"):
            if summary.strip() != (row["summary"] or ""):
                ex.update_summary(con, example_id, summary.strip(), "curator")
            ex.set_status(con, [example_id], status, "curator")
            ex.set_tags(con, example_id, [t.strip() for t in tags.split(",") if t.strip()])
            st.success("Saved.")


f = filter_ui()
total = ex.count_examples(con, f)
pages = max(1, -(-total // PAGE_SIZE))
page = st.number_input(f"Page (of {pages:,}; {total:,} examples)", 1, pages, 1, key="curate_page")
rows = ex.page_examples(con, f, (page - 1) * PAGE_SIZE, PAGE_SIZE)
picked = st.dataframe(
    rows.drop(columns=["document_id"]),
    hide_index=True,
    on_select="rerun",
    selection_mode="single-row",
    key="curate_table",
)
bulk_ui(f, total)
chosen = picked.selection.rows if picked else []
jump = st.number_input(
    "Open example id (0: the row selected above, else the first)", 0, key="curate_open"
)
if jump:
    editor_ui(int(jump))
elif len(rows):
    editor_ui(int(rows["id"].iloc[chosen[0] if chosen else 0]))
