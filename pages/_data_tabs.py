"""The Data page's tabs: each draws its widgets, makes one engine call and shows the result."""

from __future__ import annotations

from pathlib import Path

import altair as alt
import streamlit as st

from engine.clean import CleanSettings, diff_preview
from engine.curation import clean_documents, import_file, preview_cleaning
from engine.importers import ColumnMap, ImportProblem
from engine.paths import data_dir
from engine.quality import FLAG_DESCRIPTIONS
from engine.split import SplitSettings, split_examples
from pages._ui import progress_ui
from store import duplicates as dup_store
from store import examples as examples_store
from store import splits as splits_store

UPLOAD_TYPES = ["jsonl", "json", "csv", "tsv", "parquet", "txt", "md", "pdf"]


def _save_uploads(files) -> Path:
    """Write uploads under the data folder: one table file as is, text/PDF files as a folder."""
    folder = data_dir() / "uploads"
    folder.mkdir(exist_ok=True)
    if len(files) == 1 and Path(files[0].name).suffix.lstrip(".") not in ("txt", "md", "pdf"):
        target = folder / Path(files[0].name).name
        target.write_bytes(files[0].getbuffer())
        return target
    batch = folder / f"folder-{files[0].file_id}"
    batch.mkdir(exist_ok=True)
    for f in files:
        (batch / Path(f.name).name).write_bytes(f.getbuffer())
    return batch


def import_tab(con):
    st.caption(
        "JSONL, CSV/TSV, Parquet, a folder of .txt/.md/.pdf files (documents without summaries) "
        "or a Hugging Face dataset by name or saved folder. Re-importing adds no duplicates."
    )
    files = st.file_uploader("Upload files", type=UPLOAD_TYPES, accept_multiple_files=True)
    path = st.text_input(
        "…or a path on this machine / Hugging Face dataset name", key="data_import_path"
    )
    with st.expander("Column mapping (auto-detected when blank)"):
        cols = st.columns(3)
        doc_col = cols[0].text_input("Document column", key="data_doc_col")
        sum_col = cols[1].text_input("Summary column", key="data_sum_col")
        title_col = cols[2].text_input("Title column", key="data_title_col")
    skip = st.checkbox("Skip malformed rows (and report how many)", key="data_skip_bad")
    accept = st.checkbox("Mark imported examples as accepted", key="data_accept")
    if not st.button("Import", type="primary", key="data_import", disabled=not (files or path)):
        return
    mapping = ColumnMap(doc_col, sum_col or None, title_col or None) if doc_col else None
    source = _save_uploads(files) if files else path.strip()
    name = files[0].name if files and len(files) == 1 else None
    try:
        report = import_file(
            con,
            source,
            mapping,
            skip_bad_rows=skip,
            source_name=name,
            status="accepted" if accept else "pending",
            progress=progress_ui("Importing…"),
        )
    except ImportProblem as e:
        st.error(f"Nothing was imported. {e}")
        return
    st.success(report.message())


def _settings_ui() -> CleanSettings:
    c = st.columns(2)
    return CleanSettings(
        normalize_unicode=c[0].checkbox("Normalise Unicode and whitespace", True),
        join_hyphenated=c[0].checkbox("Join words hyphenated across lines", True),
        strip_headers_footers=c[0].checkbox("Strip repeated page headers/footers", True),
        strip_page_numbers=c[0].checkbox("Strip page numbers", True),
        strip_line_numbers=c[1].checkbox("Strip line-number gutters", True),
        remove_boilerplate=c[1].checkbox("Remove boilerplate lines", True),
        remove_citations=c[1].checkbox("Remove citation strings", False),
    )


def clean_tab(con):
    st.caption(
        "Cleaning always starts from the raw text, which is kept; each run that changes a "
        "document records a new version. Text is never lowercased and stop words are kept: "
        "the model must learn to write real prose."
    )
    settings = _settings_ui()
    left, right = st.columns(2)
    if left.button("Preview", key="data_clean_preview"):
        previews = preview_cleaning(con, settings)
        if not previews:
            st.info("Cleaning with these settings changes no document.")
        for p in previews:
            with st.expander(f"Document {p['id'][:12]}"):
                lines = diff_preview(p["before"], p["after"])
                st.code("\n".join(op + " " + line for op, line in lines), language="diff")
    if right.button("Apply cleaning", type="primary", key="data_clean_apply"):
        report = clean_documents(con, settings, progress=progress_ui("Cleaning…"))
        st.success(
            f"{report.n_changed:,} of {report.n_documents:,} documents changed "
            f"({report.n_repeated_lines} repeated header/footer lines found across documents)."
        )
    if st.button("Count tokens and flag documents over the model's context", key="data_tokens"):
        from engine.curation import count_tokens
        from engine.models import default_model_dir

        with st.spinner("Preparing the default model's tokenizer…"):
            model_dir = default_model_dir(progress=lambda msg: None)
        window = count_tokens(con, model_dir, progress=progress_ui("Counting tokens…"))
        st.success(f"Counted tokens with SmolLM2's tokenizer (context window {window:,}).")


def overview_tab(con):
    n = examples_store.count_examples(con)
    clusters, in_clusters = dup_store.count_clusters(con)
    statuses = examples_store.counts_by(con, "status")
    flags = examples_store.flag_counts(con)
    c = st.columns(4)
    c[0].metric("Examples", f"{n:,}")
    c[1].metric("Accepted", f"{int(statuses.set_index('status')['n'].get('accepted', 0)):,}")
    c[2].metric("Flagged", f"{int(flags['n'].sum()) if not flags.empty else 0:,}")
    c[3].metric("Duplicate clusters", f"{clusters:,}", f"{in_clusters:,} documents", "off")
    left, right = st.columns(2)
    left.altair_chart(_bar(statuses, "status", "Examples by status"))
    if not flags.empty:
        flags["meaning"] = flags["flag"].map(FLAG_DESCRIPTIONS)
        right.altair_chart(_bar(flags, "flag", "Quality flags"))
    for column, title in (("n_words", "Document length"), ("n_summary_words", "Summary length")):
        hist = examples_store.length_histogram(con, column)
        chart = (
            alt.Chart(hist, title=title)
            .mark_bar()
            .encode(x=alt.X("words:Q", title="words"), y=alt.Y("examples:Q"))
        )
        (left if column == "n_words" else right).altair_chart(chart)


def _bar(df, column, title):
    return (
        alt.Chart(df, title=title)
        .mark_bar()
        .encode(
            x=alt.X("n:Q", title="examples"),
            y=alt.Y(f"{column}:N", sort="-x", title=None),
            tooltip=list(df.columns),
        )
    )


def split_tab(con):
    st.caption(
        "Whole duplicate clusters go to one side, so no near duplicate of a test document is "
        "trained on. Already split examples keep their side."
    )
    with st.form("data_split_form"):
        c = st.columns(3)
        seed = c[0].number_input("Seed", value=13, step=1)
        val = c[1].number_input("Validation share", 0.0, 0.9, 0.1, 0.05)
        test = c[2].number_input("Test share", 0.0, 0.9, 0.1, 0.05)
        reset = st.checkbox("Re-split everything (refused once the test split is locked)")
        if st.form_submit_button("Split"):
            try:
                counts = split_examples(con, SplitSettings(int(seed), val, test), reset)
                st.success(", ".join(f"{k}: {v:,}" for k, v in counts.items()))
            except ValueError as e:
                st.error(str(e))
    st.dataframe(examples_store.counts_by(con, "split"), hide_index=True)
    if st.button("Freeze and export a dataset version", key="data_export"):
        from engine.export import export_dataset

        try:
            dataset_id, out, counts = export_dataset(con)
            st.success(f"Dataset version {dataset_id} written to `{out}`: {counts}")
        except ValueError as e:
            st.error(str(e))
    st.dataframe(splits_store.list_datasets(con), hide_index=True)
