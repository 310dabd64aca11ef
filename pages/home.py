"""Home: what a new install holds, and the loop as a checklist: each step with live counts from
the store, done or to do, the next action and a link to its page."""

import streamlit as st

from engine.auth import can
from engine.overview import loop_status, pending_import, train_step
from store import runs as runs_store
from ui.common import db, require_login
from ui.jobs import POLL_EVERY_S, job_ui
from ui.live import live_fragment

require_login()
con = db()
user = st.session_state["user"]
STEP_PAGES = {  # engine/overview.py's step ids: the page each step is done on
    "import": "pages/data.py",
    "clean": "pages/data.py",
    "dedupe": "pages/duplicates.py",
    "curate": "pages/curate.py",
    "label": "pages/label.py",
    "review": "pages/review.py",
    "split": "pages/data.py",
    "train": "pages/train.py",
    "compare": "pages/compare.py",
    "promote": "pages/compare.py",
}
PAGE_TITLES = {
    "pages/data.py": ("Data", "📥"),
    "pages/duplicates.py": ("Duplicates", "👯"),
    "pages/curate.py": ("Curate", "✍️"),
    "pages/label.py": ("Label", "🏷️"),
    "pages/review.py": ("Review", "⭐"),
    "pages/train.py": ("Train", "🏋️"),
    "pages/compare.py": ("Compare", "📊"),
}

st.title("Tuneloop")
st.markdown(
    "Turn a pile of documents into a fine-tuned summarization model you can trust: curate the "
    "data, label what has no summary, train, compare with the model you started from, ship."
)
trained = train_step(con)["done"]
with st.expander("The sample set this install starts with", expanded=not trained):
    st.markdown(
        "**44 fictional personal-injury cases** (complaints, case summaries, settlement memos, "
        "claim files, petitions), each with a 40–90-word reference summary that uses only facts "
        "from its document; 4 have no summary yet, for the labelling loop. Some rows are "
        "damaged on purpose so the curation tools have something to find: exact copies (the two "
        "byte-identical ones merge on import, so the store starts with 42 documents), near "
        "duplicates (an amended re-filing, reordered paragraphs, a changed header line), "
        "running headers and footers, words hyphenated across lines, a line-number gutter, "
        "curly quotes and ligatures, a blank page, a summary copied from its document and a "
        "21-word file note.\n\n"
        "On first start it was imported, cleaned and deduplicated, and the examples with a "
        "summary and no quality flag were accepted and split; the duplicates are left for you "
        "to resolve. Every person, court and amount is invented (Apache-2.0; details in "
        "`engine/data/sample_set/README.md`). Import your own documents on the Data page at "
        "any time."
    )


@live_fragment(POLL_EVERY_S)
def loop_ui():
    """The jobs under way (with Cancel) and the checklist, redrawn while they run, so both
    change when a job ends."""
    con = db()
    active = runs_store.list_runs(con, states=("queued", "running"))
    if not active.empty:
        st.subheader("Jobs under way")
        for run in active.to_dict("records"):
            job_ui(con, run, "home")
    steps = loop_status(con)
    if note := pending_import(con):
        st.warning(note, icon="📥")
        st.page_link(STEP_PAGES["curate"], label="Curate", icon="✍️")
    allowed = [s for s in steps if s["action"] is None or can(user, s["action"])]
    upcoming = next((s for s in allowed if not s["done"]), None)
    if upcoming:
        st.info(f"**Next: {upcoming['step']}.** {upcoming['next']}", icon="👉")
    else:
        st.success("Every step of the loop is done. Import more data to go round again.", icon="✅")

    st.subheader("The loop")
    for number, step in enumerate(steps, 1):
        with st.container(border=True):
            name, detail, link = st.columns([2, 6, 2], vertical_alignment="center")
            name.markdown(f"{'✅' if step['done'] else '⬜'} **{number}. {step['step']}**")
            detail.markdown(step["counts"])
            detail.caption(("Done. " if step["done"] else "To do: ") + step["next"])
            if step in allowed:
                page = STEP_PAGES[step["id"]]
                title, icon = PAGE_TITLES[page]
                link.page_link(page, label=title, icon=icon)
            else:
                link.caption("An admin does this step.")


loop_ui()
