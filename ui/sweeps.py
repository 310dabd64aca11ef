"""The Train page's sweep section: define a search, follow its trials, compare them, use the
best settings for the next retrain."""

from __future__ import annotations

import altair as alt
import streamlit as st

from engine.training.config import TrainConfig
from engine.training.sweeps import (
    SweepSpace,
    best_trial,
    cancel_sweep,
    start_sweep,
    sweep_results,
    use_best,
)
from store import sweeps as sweeps_store


def _numbers(text: str, cast=float) -> list:
    return [cast(v) for v in text.replace(" ", "").split(",") if v]


def sweeps_ui(con, user: dict, base_model: str, base: TrainConfig | None):
    st.subheader("Hyperparameter sweeps")
    with st.expander("New sweep"):
        st.caption(
            "Trials run one after another in the training queue, on one frozen dataset version, "
            "starting from the settings above; the objective is the best validation loss. "
            "Epochs replace max steps in every trial."
        )
        c = st.columns(3)
        rates = c[0].text_input("Learning rates", "1e-4, 3e-4, 1e-3", key="sweep_lr")
        epochs = c[1].text_input("Epochs", "1, 2", key="sweep_epochs")
        ranks = c[2].text_input("LoRA ranks", "8, 16", key="sweep_ranks")
        c = st.columns(3)
        method = c[0].selectbox(
            "Search",
            ["tpe", "grid"],
            key="sweep_method",
            format_func={"tpe": "Optuna TPE", "grid": "Grid (every combination)"}.get,
        )
        trials = c[1].number_input("Trials", 1, 100, 6, key="sweep_trials")
        seed = c[2].number_input("Seed", 0, 2**31, 0, key="sweep_seed")
        if st.button("Start sweep", key="sweep_start") and base is not None:
            try:
                space = SweepSpace(
                    _numbers(rates),
                    _numbers(epochs),
                    _numbers(ranks, int),
                    int(trials),
                    method,
                    int(seed),
                )
                sweep_id = start_sweep(con, base, base_model, space, user)
                st.success(f"Started {sweep_id}: {space.planned_trials()} trials.")
            except ValueError as e:
                st.error(str(e))
    sweeps = sweeps_store.list_sweeps(con)
    if sweeps.empty:
        return
    labels = {r.id: f"{r.id} · {r.state}" for r in sweeps.itertuples()}
    sweep_id = st.selectbox("Sweep", list(labels), format_func=labels.get, key="sweep_pick")
    results = sweep_results(con, sweep_id)
    st.dataframe(results, hide_index=True)
    scored = results.dropna(subset=["best val loss"]) if not results.empty else results
    if len(scored):
        long = scored.melt(
            id_vars=["trial", "best val loss"],
            value_vars=["learning_rate", "epochs", "lora_r"],
            var_name="setting",
        )
        # One small scatter per setting: the objective against each value tried.
        chart = (
            alt.Chart(long)
            .mark_circle(size=80)
            .encode(
                x=alt.X("value:Q", scale=alt.Scale(type="log"), title=None),
                y=alt.Y("best val loss:Q", scale=alt.Scale(zero=False)),
                tooltip=["trial", "setting", "value", "best val loss"],
            )
            .properties(width=200, height=180)
            .facet(column="setting:N")
            .resolve_scale(x="independent")
        )
        st.altair_chart(chart)
    c = st.columns(2)
    best = best_trial(con, sweep_id)
    if best and c[0].button("Use best for the next retrain", key="sweep_use_best"):
        config = use_best(con, sweep_id, user)
        st.success(
            f"The next retrain uses learning rate {config.learning_rate:g}, {config.epochs:g} "
            f"epochs, LoRA rank {config.lora_r} (trial {best['trial']})."
        )
    state = sweeps.set_index("id").loc[sweep_id, "state"]
    if state == "running" and c[1].button("Cancel sweep", key="sweep_cancel"):
        cancel_sweep(con, sweep_id, user)
        st.rerun()
