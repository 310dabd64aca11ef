"""The Data page's tabs: each draws its widgets, makes one engine call and shows the result."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pandas as pd
import streamlit as st

from engine.data.charts import count_bars, length_histogram
from engine.data.clean import CleanSettings, diff_preview
from engine.data.curation import clean_documents, preview_cleaning
from engine.data.imports import import_file
from engine.data.opening import check_import_path, preview_csv
from engine.data.quality import FLAG_DESCRIPTIONS
from engine.data.sources import ColumnMap, ImportProblem
from engine.data.split import (
    SplitSettings,
    last_split_settings,
    split_examples,
    training_data_summary,
)
from engine.jobs import background
from engine.paths import import_dirs, new_upload_folder, safe_file_name
from store import duplicates as dup_store
from store import examples as examples_store
from store import splits as splits_store
from ui.common import progress_ui
from ui.live import live_fragment
from ui.text import plain
from ui.training_data import summary_ui

UPLOAD_TYPES = ["jsonl", "json", "csv", "tsv", "parquet", "txt", "md", "pdf"]


def _save_uploads(files) -> Path:
    """Write uploads to a fresh folder under <data>/uploads, each under a safe name: one table
    file comes back as its path, text/PDF files (or several files) as the folder."""
    folder, saved = new_upload_folder(), []
    for f in files:
        name, n = safe_file_name(f.name), 1
        while (folder / name).exists():  # two files of the same name in one upload
            n += 1
            name = f"{n}-{safe_file_name(f.name)}"
        (folder / name).write_bytes(f.getbuffer())
        saved.append(folder / name)
    one_table = len(saved) == 1 and saved[0].suffix.lower() not in (".txt", ".md", ".pdf")
    return saved[0] if one_table else folder


def _upload_name(files) -> str:
    """How an upload is listed: its file's name, or its files' names (not the folder's)."""
    names = [f.name for f in files]
    shown = ", ".join(names[:3])
    return shown + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def _is_csv(name: str) -> bool:
    return name.lower().endswith((".csv", ".tsv", ".csv.gz", ".tsv.gz"))


def _preview(files, path: str, user, mapping: ColumnMap | None, header: bool):
    """The column-mapping preview of the one CSV/TSV file being imported (an upload, read from
    a temporary copy that is deleted at once, or an admin's path), remembered per file and
    choice so reruns do not read it again; None for other sources, ImportProblem's text when the
    file cannot be read."""
    if files:
        if len(files) != 1 or not _is_csv(files[0].name):
            return None
        key = (files[0].file_id, mapping, header)
    elif _is_csv(path.strip()):
        key = (path.strip(), mapping, header)
    else:
        return None
    cached = st.session_state.get("data_preview")
    if cached and cached[0] == key:
        return cached[1]
    try:
        if files:
            with tempfile.TemporaryDirectory() as folder:
                copy = Path(folder) / safe_file_name(files[0].name)
                copy.write_bytes(files[0].getbuffer())
                preview = preview_csv(copy, mapping, header)
        else:
            target = check_import_path(path.strip(), user)
            preview = (
                preview_csv(Path(target), mapping, header) if isinstance(target, Path) else None
            )
    except (ImportProblem, OSError) as e:
        preview = plain(e)
    st.session_state["data_preview"] = (key, preview)
    return preview


def _preview_ui(files, path: str, user, mapping: ColumnMap | None) -> tuple[ColumnMap | None, bool]:
    """For one CSV/TSV file: 'No header row', the first rows and the columns the import will
    use (chosen here when there is no header). Returns (mapping, header)."""
    if not (files and len(files) == 1 and _is_csv(files[0].name)) and not _is_csv(path.strip()):
        return mapping, True
    header = not st.checkbox(
        "No header row: the first line is data (columns are named col1, col2, …)",
        key="data_no_header",
    )
    preview = _preview(files, path, user, mapping if header else None, header)
    if preview is None or isinstance(preview, str):
        if preview:
            st.error(f"This file cannot be imported as it is. {preview}")
        return mapping, header
    if preview.warning:
        st.warning(plain(preview.warning))
    if not header:
        c = st.columns(2)
        proposed = preview.mapping or ColumnMap(preview.columns[0], "")
        document = c[0].selectbox(
            "The document is in",
            preview.columns,
            preview.columns.index(proposed.document),
            key="data_nh_doc",
        )
        options = ["(none)", *preview.columns]
        summary = c[1].selectbox(
            "The summary is in",
            options,
            options.index(proposed.summary or "(none)"),
            key="data_nh_sum",
        )
        mapping = ColumnMap(document, "" if summary == "(none)" else summary, "")
        chosen = mapping
    else:
        chosen = preview.mapping
    if chosen:
        st.caption(
            f"Preview of the first rows. Document column: **{chosen.document}**; summary "
            f"column: **{chosen.summary or 'none'}**; title column: **{chosen.title or 'none'}**."
        )
    elif preview.problem:
        st.error(plain(preview.problem))
    names = [c[:60] for c in preview.columns]
    if len(set(names)) < len(names):  # a table's columns must differ
        names = [f"{i}. {name}" for i, name in enumerate(names, 1)]
    st.dataframe(pd.DataFrame(preview.rows, columns=names), hide_index=True)
    return mapping, header


def import_tab(con):
    from engine.auth import can

    user = st.session_state.get("user")
    st.caption(
        "JSONL, CSV/TSV, Parquet, a folder of .txt/.md/.pdf files (documents without summaries) "
        "or a Hugging Face dataset by name or saved folder. Re-importing adds no duplicates."
    )
    files = st.file_uploader("Upload files", type=UPLOAD_TYPES, accept_multiple_files=True)
    path = ""
    if can(user, "import_path"):  # reading files on the server is for admins only
        folders = ", ".join(f"`{d}`" for d in import_dirs())
        path = st.text_input(
            "…or a path in the import folders / a Hugging Face dataset name (owner/name)",
            key="data_import_path",
            help=f"Import folders: {folders}. The TUNELOOP_IMPORT_DIRS setting adds more.",
        )
    with st.expander("Column mapping (auto-detected when blank)"):
        cols = st.columns(3)
        doc_col = cols[0].text_input("Document column", key="data_doc_col")
        sum_col = cols[1].text_input("Summary column", key="data_sum_col")
        title_col = cols[2].text_input("Title column", key="data_title_col")
    mapping = ColumnMap(doc_col, sum_col or None, title_col or None) if doc_col else None
    mapping, header = _preview_ui(files, path, user, mapping)
    skip = st.checkbox("Skip malformed rows (and report how many)", key="data_skip_bad")
    accept = st.checkbox("Mark imported examples as accepted", key="data_accept")
    if not st.button("Import", type="primary", key="data_import", disabled=not (files or path)):
        return
    source = _save_uploads(files) if files else path.strip()
    try:
        report = import_file(
            con,
            source,
            mapping,
            skip_bad_rows=skip,
            source_name=_upload_name(files) if files else None,
            status="accepted" if accept else "pending",
            progress=progress_ui("Importing…"),
            user=user,
            header=header,
        )
    except ImportProblem as e:
        if files:  # a refused upload is not kept: its folder is this upload's alone
            shutil.rmtree(source if source.is_dir() else source.parent, ignore_errors=True)
        st.error(f"Nothing was imported. {plain(e)}")
        return
    st.success(plain(report.message()))


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
        preview = preview_cleaning(con, settings)
        if not preview.n_changed:
            st.info("Cleaning with these settings changes no document.")
        else:
            st.caption(
                f"Showing {len(preview.documents)} of {preview.n_changed:,} documents that would "
                f"change (of {preview.n_documents:,})."
            )
        for p in preview.documents:
            with st.expander(f"Document {p['id'][:12]}"):
                lines = diff_preview(p["before"], p["after"])
                st.code("\n".join(op + " " + line for op, line in lines), language="diff")
    if right.button("Apply cleaning", type="primary", key="data_clean_apply"):
        report = clean_documents(
            con, settings, progress=progress_ui("Cleaning…"), user=st.session_state["user"]
        )
        st.success(
            f"{report.n_changed:,} of {report.n_documents:,} documents changed "
            f"({report.n_repeated_lines} repeated header/footer lines found across documents)."
        )
    if st.button("Count tokens and flag documents over the model's context", key="data_tokens"):
        from engine.data.curation import count_tokens

        background.start(TOKENS_TASK, con, count_tokens, user=st.session_state["user"])
    if background.state(TOKENS_TASK) is not None:
        token_count_ui()


TOKENS_TASK = "count_tokens"


@live_fragment(1)
def token_count_ui():
    """How the token count started from the Clean tab goes (it runs on a thread)."""
    if background.running(TOKENS_TASK):
        task = background.state(TOKENS_TASK)
        done, total = task["done"], task["total"]
        text = f"Counting tokens… {done:,} / {total:,}" if total else "Loading the tokenizer…"
        st.progress(done / total if total else 0.0, text=text)
    elif (state := background.take_finished(TOKENS_TASK)) is not None:
        if state["error"]:
            st.error(f"Tokens were not counted: {state['error']}")
        else:
            window = state["result"]
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
    c[3].metric("Duplicate clusters", f"{clusters:,}")
    c[3].caption(f"{in_clusters:,} documents in them")  # a count, not a change: no delta arrow
    left, right = st.columns(2)
    left.altair_chart(count_bars(statuses, "status", "Examples by status"))
    if not flags.empty:
        flags["meaning"] = flags["flag"].map(FLAG_DESCRIPTIONS)
        right.altair_chart(count_bars(flags, "flag", "Quality flags"))
    for column, title in (("n_words", "Document length"), ("n_summary_words", "Summary length")):
        hist = examples_store.length_histogram(con, column)
        if not hist.empty:
            (left if column == "n_words" else right).altair_chart(length_histogram(hist, title))


def _accepted_note(after: dict) -> str:
    """Why the Train page's counts can be lower than the split's: sides are dealt to every
    example with a summary that is not rejected, training takes the accepted ones only."""
    if not after["not_accepted"]:
        return ""
    return (
        f" Training uses accepted examples only ({after['train']:,} train, "
        f"{after['validation']:,} validation, as the Train page shows): "
        f"{after['not_accepted']:,} examples with a summary are pending or need an edit; "
        "accept them on Curate to train on them."
    )


def split_tab(con):
    st.caption(
        "Whole duplicate clusters go to one side, so no near duplicate of a test document is "
        "trained on. Splitting gives new examples a side (a new member of a cluster joins its "
        "cluster's side); examples already split keep theirs."
    )
    summary_box = st.container()  # drawn after the action below, so it shows the result
    last = last_split_settings(con)
    locked = splits_store.is_test_locked(con)
    with st.form("data_split_form"):
        c = st.columns(3)
        seed = c[0].number_input("Seed", value=last.seed, step=1, key="data_split_seed")
        val = c[1].number_input(
            "Validation share", 0.0, 0.9, last.validation, 0.05, key="data_split_validation"
        )
        test = c[2].number_input("Test share", 0.0, 0.9, last.test, 0.05, key="data_split_test")
        reset = st.checkbox(
            "Re-split everything"
            + (" (refused: a model has been evaluated on the test split)" if locked else ""),
            key="data_split_reset",
            disabled=locked,
        )
        submitted = st.form_submit_button("Split")
    if submitted:
        before = training_data_summary(con)["unsplit"]
        try:
            settings = SplitSettings(int(seed), val, test)
            counts = split_examples(con, settings, reset, user=st.session_state["user"])
            st.success(
                ("Re-split every example" if reset else f"{before:,} accepted examples got a side")
                + ". Examples with a summary per side: "
                + ", ".join(f"{k} {v:,}" for k, v in counts.items())
                + "."
                + _accepted_note(training_data_summary(con))
            )
        except ValueError as e:
            st.error(str(e))
    with summary_box:
        summary_ui(training_data_summary(con))
    if st.button("Freeze and export a dataset version", key="data_export"):
        from engine.data.export import export_dataset

        try:
            dataset_id, out, counts = export_dataset(con, user=st.session_state["user"])
            st.success(f"Dataset version {dataset_id} written to `{out}`: {counts}")
        except ValueError as e:
            st.error(str(e))
    st.dataframe(splits_store.list_datasets(con), hide_index=True)
