"""Widgets of the Compare page: picking the two models, their evaluations, the summary table,
one document side by side, and promotion."""

from __future__ import annotations

import streamlit as st

from engine.evaluation import comparison
from engine.evaluation import runs as evaluation_runs
from engine.evaluation.report import diff_html
from engine.followups import promote_and_publish
from engine.models.registry import production_model
from store import evals as evals_store
from store import registry as reg_store
from store import runs as runs_store
from store import splits as splits_store
from ui.common import db
from ui.export import export_ui
from ui.jobs import POLL_EVERY_S, job_ui
from ui.live import live_fragment
from ui.text import plain


def pick_ui(con) -> tuple[int | None, str, str]:
    """Dataset version, model A (default: production) and B (default: newest fine-tune)."""
    from engine.models.registry import ensure_default_model

    with st.spinner("Preparing the embedded default model (converted once, ~20 s)…"):
        ensure_default_model(con, progress=lambda msg: None)
    datasets = splits_store.list_datasets(con)
    datasets = datasets[datasets["n_test"] > 0]
    models = reg_store.list_models(con)
    ids = models["id"].tolist()
    production = production_model(con)
    tuned = models[models["run_id"].notna()]["id"].tolist()
    default_b = tuned[-1] if tuned else next((m for m in ids if m != production), production)
    default_a = production
    if default_b == production:  # just promoted: compare it with the model it replaced
        promotions = evals_store.list_promotions(con)
        previous = promotions["previous_model_id"].dropna().tolist() if len(promotions) else []
        default_a = next((m for m in previous if m in ids and m != production), None) or next(
            (m for m in ids if m != production), production
        )
    c = st.columns([1, 2, 2])
    options = datasets["id"].tolist() or [None]
    # Open where the latest finished comparison of the default pair is, not on the newest
    # version (a retrain freezes one before anything is evaluated on it).
    opening = evaluation_runs.default_dataset(con, default_a, default_b)
    dataset = c[0].selectbox(
        "Test split of dataset",
        options,
        index=options.index(opening) if opening in options else 0,
        format_func=lambda d: "new from current splits" if d is None else f"v{d}",
        key="compare_dataset",
    )
    model_a = c[1].selectbox(
        "A (reference model)",
        ids,
        index=ids.index(default_a) if default_a in ids else 0,
        key="compare_a",
    )
    model_b = c[2].selectbox(
        "B (candidate)", ids, index=ids.index(default_b) if default_b in ids else 0, key="compare_b"
    )
    return dataset, model_a, model_b


def settings_ui():
    """The generation settings of evaluations started here (the same for both models)."""
    from dataclasses import replace

    with st.expander("Evaluation settings (for runs started here)"):
        max_new = st.number_input(
            "Max new tokens per summary",
            16,
            2048,
            evaluation_runs.EVAL_SETTINGS.max_new_tokens,
            16,
            key="compare_max_new",
            help="Greedy decoding. Compare evaluations made with the same settings.",
        )
    return replace(evaluation_runs.EVAL_SETTINGS, max_new_tokens=int(max_new))


@live_fragment(POLL_EVERY_S)
def evaluations_ui(dataset: int | None, models: tuple[str, str], ready: bool, settings=None):
    """Each model's newest evaluation on the dataset, with a button to run a missing one and
    live progress; reruns the page when both have finished (`ready` is what the page saw).
    Reads the store only: the background poller ingests the runs."""
    con = db()
    evaluations = evals_store.list_evaluations(con, dataset)
    for side, model_id in zip("AB", models):
        table = evaluations[(evaluations["model_id"] == model_id) & (dataset is not None)]
        run = table.iloc[0] if not table.empty else None
        busy = run is not None and run["state"] in ("queued", "running")
        if run is None:
            st.write(f"**{side}: {model_id}** · not evaluated on this test split")
        else:
            st.write(f"**{side}: {model_id}**")
            job = runs_store.get_run(con, run["run_id"])
            job_ui(con, job, f"compare_{side}")
        if not busy:
            label = "Evaluate" if run is None else "Re-evaluate"
            if st.button(label, key=f"compare_eval_{side}_{model_id}"):
                try:
                    user = st.session_state["user"]
                    evaluation_runs.start_evaluation(
                        con, model_id, dataset, settings or evaluation_runs.EVAL_SETTINGS, user=user
                    )
                    st.rerun()
                except ValueError as e:
                    st.error(str(e))
    if (evaluation_runs.ready_pair(con, dataset, *models) is not None) != ready:
        st.rerun()


def summary_ui(comparison: comparison.Comparison):
    table = comparison.table
    shown = table.assign(
        A=[
            f"{m:.3f} [{lo:.3f}, {hi:.3f}]"
            for m, lo, hi in table[["a_mean", "a_low", "a_high"]].values
        ],
        B=[
            f"{m:.3f} [{lo:.3f}, {hi:.3f}]"
            for m, lo, hi in table[["b_mean", "b_low", "b_high"]].values
        ],
        delta=[
            f"{m:+.3f} [{lo:+.3f}, {hi:+.3f}]"
            for m, lo, hi in table[["delta", "delta_low", "delta_high"]].values
        ],
        clear_winner=table["clear_winner"].fillna("—"),
    )[["metric", "A", "B", "delta", "p_value", "clear_winner"]]
    st.dataframe(
        shown,
        hide_index=True,
        column_config={
            "A": f"A: {comparison.model_a}",
            "B": f"B: {comparison.model_b}",
            "delta": "Δ B − A (95% CI)",
            "p_value": st.column_config.NumberColumn("p", format="%.3f"),
            "clear_winner": "Clear winner",
        },
    )
    from ui.savings import savings_ui

    savings_ui(db(), (comparison.model_a, comparison.model_b))


def document_ui(row, model_a: str, model_b: str):
    """One test document: the document, the reference, both summaries (words that do not line
    up with the reference marked) and their scores."""
    st.subheader(plain(row["title"] or f"Example {row['example_id']}"))
    with st.expander("Document", expanded=False):
        st.text(row["document"])
    c = st.columns(3)
    c[0].markdown("**Reference**")
    c[0].text(row["reference"])
    for col, side, model in ((c[1], "a", model_a), (c[2], "b", model_b)):
        col.markdown(f"**{side.upper()}: {plain(model)}**")
        col.html(f"<div>{diff_html(row[f'summary_{side}'], row['reference'])}</div>")
        facts = row[f"unsupported_{side}"]
        col.caption(
            f"ROUGE-1 {row[f'rouge1_{side}']:.3f} · ROUGE-2 {row[f'rouge2_{side}']:.3f} · "
            f"ROUGE-L {row[f'rougeL_{side}']:.3f} · {row[f'summary_words_{side}']} words · "
            f"unsupported: {facts if facts != '[]' else 'none'}"
        )


def promote_ui(con, model_b: str):
    """Promote B to production: refused unless it beats the production model on this test
    split, or an override reason is given."""
    with st.form("compare_promote"):
        st.caption(
            f"Production model now: **{production_model(con)}**. Promotion needs B to beat it on "
            "ROUGE-L over the same test documents, or a reason."
        )
        reason = st.text_input("Override reason (only to promote without beating it)")
        if st.form_submit_button(f"Promote {model_b} to production"):
            try:
                promote_and_publish(con, model_b, st.session_state["user"], reason)
                st.success(f"{model_b} is now the production model.")
            except ValueError as e:
                st.error(str(e))
    export_ui(con, model_b)  # the Actions tab's last action: export B (admins)
