"""Curate: browse, search and filter examples, edit one, accept/reject/tag in bulk.

Pages through the store in SQL (50 rows at a time), so it stays fast with 100,000 examples. The
editor's widgets are keyed by the example's id, so opening another example never carries the
last one's values over. A save carries the version the editor opened and is refused, showing
both texts, when someone saved in between. Every change is in the example's history with a
Revert; bulk actions (admins only) ask for confirmation and can be undone. Actions run first,
then the page is drawn again (st.rerun) so it shows what they stored. Titles, summaries, tags and
sources show as text, never as Markdown. The editor shows the example chosen last: a ticked
table row, or a typed id (each clears the other).
"""

import hashlib

import streamlit as st

from engine.auth import can
from engine.data.editing import (
    StaleEdit,
    bulk_add_tag,
    bulk_set_status,
    revert_change,
    save_example,
    undo_batch,
)
from engine.data.quality import FLAG_DESCRIPTIONS
from store import examples as ex
from store import history
from ui.common import db, require_login
from ui.text import plain

PAGE_SIZE = 50
QUESTIONS = {
    "accepted": "Accept {n:,} examples?",
    "rejected": "Reject {n:,} examples?",
    "pending": "Set {n:,} examples back to pending?",
    "needs-edit": "Mark {n:,} examples as needing an edit?",
}
require_login()
con = db()
user = st.session_state["user"]
st.title("Curate")
if flash := st.session_state.pop("curate_flash", None):
    st.toast(flash)


def done(message: str, reload: int | None = None):
    """Show `message` once the page is drawn again from the store (and reload an editor).
    Never returns: st.rerun() ends this run."""
    st.session_state["curate_flash"] = message
    if reload is not None:
        st.session_state[f"curate_reload_{reload}"] = True
    st.rerun()


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
            st.session_state["curate_bulk_pending"] = (repr(f), "status", status, total)
        tag = c[2].text_input("Add tag", key="curate_bulk_tag").strip()
        if c[3].button("Tag", key="curate_bulk_tag_apply"):
            if tag:
                st.session_state["curate_bulk_pending"] = (repr(f), "tag", tag, total)
            else:
                st.error("Type the tag to add first.")
        confirm_ui(f, {"status": status, "tag": tag})
        batches_ui()


def confirm_ui(f: ex.ExampleFilter, chosen: dict):
    """Step two of a bulk action: the count and a Confirm keyed by filter and value, so a
    changed filter or value never confirms the action asked for before."""
    pending = st.session_state.get("curate_bulk_pending")
    if pending is None:
        return
    key, kind, value, n = pending
    if key != repr(f) or chosen[kind] != value or n == 0:
        del st.session_state["curate_bulk_pending"]
        if n == 0 and key == repr(f):
            st.info("No examples match the filter: nothing to change.")
        return
    question = QUESTIONS[value] if kind == "status" else "Tag {n:,} examples with {value}?"
    st.warning(question.format(n=n, value=plain(repr(value))))
    digest = hashlib.sha1(repr(pending).encode()).hexdigest()[:12]
    c = st.columns([1, 1, 4])
    if c[0].button("Confirm", key=f"curate_bulk_confirm_{digest}", type="primary"):
        ids = ex.ids_where(con, f)
        if len(ids) != n:  # the store changed since the count was shown
            st.session_state["curate_bulk_pending"] = (key, kind, value, len(ids))
            done(f"The filter now matches {len(ids):,} examples, not {n:,}: confirm again.")
        del st.session_state["curate_bulk_pending"]
        if kind == "status":
            batch, changed = bulk_set_status(con, ids, value, user)
            done(f"Bulk action {batch}: {changed:,} examples set to {value}.")
        batch, changed = bulk_add_tag(con, ids, value, user)
        done(f"Bulk action {batch}: tagged {changed:,} examples with {plain(repr(value))}.")
    if c[1].button("Cancel", key="curate_bulk_cancel"):
        del st.session_state["curate_bulk_pending"]
        st.rerun()


def batches_ui():
    batches = history.recent_batches(con, 5)
    if batches.empty:
        return
    st.caption("Recent bulk actions")
    for b in batches.itertuples():
        c = st.columns([6, 1])
        state = " · undone" if b.undone else ""
        when = f"{b.created_at:%d %b %H:%M}"
        c[0].text(f"{b.id}. {b.action} · {b.n:,} changed · {b.username} · {when}{state}")
        if c[1].button("Undo", key=f"curate_undo_{b.id}", disabled=bool(b.undone)):
            try:
                restored, left = undo_batch(con, int(b.id), user)
            except ValueError as e:
                st.error(str(e))
            else:
                kept = f"; {left:,} changed since and were left as they are" if left else ""
                done(f"Undid bulk action {b.id}: {restored:,} restored{kept}.")


def load(example_id: int, state: dict):
    """Start the editor's widgets from the stored example and remember its version."""
    st.session_state[f"curate_summary_{example_id}"] = state["summary"] or ""
    st.session_state[f"curate_status_{example_id}"] = state["status"]
    st.session_state[f"curate_tags_{example_id}"] = ", ".join(state["tags"])
    st.session_state[f"curate_base_{example_id}"] = state["version"]


def editor_ui(example_id: int):
    row, state = ex.get_example(con, example_id), ex.get_state(con, example_id)
    if row is None:
        st.warning(f"No example {example_id}.")
        return
    reload = st.session_state.pop(f"curate_reload_{example_id}", False)
    if reload or f"curate_summary_{example_id}" not in st.session_state:
        load(example_id, state)  # the editor opens (or reloads): its widgets start from here
    st.subheader(plain(row["title"] or f"Example {example_id}"))
    flags = [FLAG_DESCRIPTIONS.get(f, f) for f in row["flags"]]
    st.caption(
        " · ".join(
            [state["status"], f"split {row['split'] or '—'}", plain(row["source"])]
            + [f"version {state['version']}", *flags]
        )
    )
    left, right = st.columns(2)
    left.text_area(
        "Document (cleaned)",
        row["clean_text"],
        height=400,
        disabled=True,
        key=f"curate_document_{example_id}",
    )
    with right.form(f"curate_edit_{example_id}"):
        summary = st.text_area("Reference summary", height=250, key=f"curate_summary_{example_id}")
        status = st.radio("Status", ex.STATUSES, horizontal=True, key=f"curate_status_{example_id}")
        tags = st.text_input("Tags (comma-separated)", key=f"curate_tags_{example_id}")
        saved = st.form_submit_button("Save", type="primary")
    if saved:
        base = st.session_state[f"curate_base_{example_id}"]
        try:
            save_example(
                con,
                example_id,
                summary=summary,
                status=status,
                tags=tags.split(","),
                base_version=base,
                user=user,
            )
        except StaleEdit as e:
            yours = {"summary": summary, "status": status, "tags": tags}
            st.session_state[f"curate_conflict_{example_id}"] = (str(e), e.current, yours)
        except ValueError as e:
            st.error(str(e))
        else:
            done(f"Saved example {example_id}", reload=example_id)
    if conflict := st.session_state.get(f"curate_conflict_{example_id}"):
        conflict_ui(example_id, *conflict)
    history_ui(example_id)


def conflict_ui(example_id: int, message: str, theirs: dict, yours: dict):
    """A refused save: both versions side by side, so nothing typed is lost."""
    st.error(message)
    c = st.columns(2)
    by = plain(theirs["updated_by"])
    c[0].markdown(f"**Theirs** (saved, version {theirs['version']} by {by})")
    c[0].code(theirs["summary"] or "(no summary)", language=None, wrap_lines=True)
    c[0].caption(plain(f"{theirs['status']} · tags: {', '.join(theirs['tags']) or '—'}"))
    c[1].markdown("**Yours** (not saved)")
    c[1].code(yours["summary"] or "(no summary)", language=None, wrap_lines=True)
    c[1].caption(plain(f"{yours['status']} · tags: {yours['tags'] or '—'}"))
    b = st.columns(2)
    if b[0].button("Reload the latest (drops yours)", key=f"curate_reload_latest_{example_id}"):
        del st.session_state[f"curate_conflict_{example_id}"]
        done(f"Reloaded example {example_id}.", reload=example_id)
    if b[1].button("Keep mine (Save then replaces theirs)", key=f"curate_keep_{example_id}"):
        del st.session_state[f"curate_conflict_{example_id}"]
        st.session_state[f"curate_base_{example_id}"] = theirs["version"]
        done("Your text is still in the editor: Save to replace theirs.")


def history_ui(example_id: int):
    changes = history.example_history(con, example_id)
    with st.expander(f"History ({len(changes)} changes)"):
        for h in changes.itertuples():
            c = st.columns([6, 1])
            note = f" · {h.note}" if isinstance(h.note, str) else ""
            c[0].markdown(
                f"**{h.field}** · {plain(h.username or '?')} · {h.changed_at:%Y-%m-%d %H:%M}"
                f"{plain(note)}  \n{short(h.before)} → {short(h.after)}"
            )
            help_ = "Reject the example (undo its creation)" if h.field == "created" else None
            if c[1].button("Revert", key=f"curate_revert_{h.id}", help=help_):
                try:
                    message = revert_change(con, int(h.id), user)
                except ValueError as e:
                    st.error(str(e))
                else:
                    done(message, reload=example_id)


def short(value) -> str:
    """A history value as inline code (which never renders Markdown), cut at 160 characters."""
    if not isinstance(value, str):
        return "*(none)*"
    value = " ".join(value.replace("`", "'").split())  # one line: a code span cannot hold more
    return f"`{value[:160]}{'…' if len(value) > 160 else ''}`"


f = filter_ui()
total = ex.count_examples(con, f)
pages = max(1, -(-total // PAGE_SIZE))
page = st.number_input(f"Page (of {pages:,}; {total:,} examples)", 1, pages, 1, key="curate_page")
rows = ex.page_examples(con, f, (page - 1) * PAGE_SIZE, PAGE_SIZE)


# Which example the editor shows: the last choice wins. Ticking a row clears a typed id;
# typing an id clears the ticked row (the table's key changes, which drops its selection).
def row_ticked():
    st.session_state["curate_open"] = 0


def id_typed():
    st.session_state["curate_table_n"] = st.session_state.get("curate_table_n", 0) + 1


picked = st.dataframe(
    rows.drop(columns=["document_id"]),
    hide_index=True,
    on_select=row_ticked,
    selection_mode="single-row",
    key=f"curate_table_{st.session_state.get('curate_table_n', 0)}",
)
if can(user, "bulk_edit"):  # the engine refuses bulk actions to reviewers too
    bulk_ui(f, total)
chosen = picked.selection.rows if picked else []
jump = st.number_input(
    "Open example id (0: the row ticked above, else the first)",
    0,
    key="curate_open",
    on_change=id_typed,
)
if jump:
    editor_ui(int(jump))
elif len(rows):
    editor_ui(int(rows["id"].iloc[chosen[0] if chosen else 0]))
