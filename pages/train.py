"""Train: one click retrains with the latest accepted data; live progress, training and
validation curves, the overfitting alarm, log tail and cancel; runs compared side by side."""

import json

import altair as alt
import pandas as pd
import streamlit as st

from engine import jobs, runs
from engine.training import (
    default_config,
    refresh_all,
    retrain_latest,
    run_metrics,
    start_training,
)
from pages._sweep_ui import sweeps_ui
from pages._train_ui import config_ui
from pages._ui import db, model_ui, require
from store import runs as runs_store

require("train")
con = db()
user = st.session_state["user"]["name"]
st.title("Train")

if st.button("Retrain with the latest accepted data", type="primary", key="train_retrain"):
    try:
        run_id, warnings = retrain_latest(con, user)
        st.success(f"Queued {run_id}.")
        for w in warnings:
            st.warning(w)
    except ValueError as e:
        st.error(str(e))

with st.expander("New run with chosen settings"):
    base = model_ui(con, "Base model", "train_base")
    config = config_ui(default_config(con))
    if st.button("Start this run", key="train_start") and config is not None:
        try:
            run_id, warnings = start_training(con, config, base, user)
            st.success(f"Queued {run_id}.")
            for w in warnings:
                st.warning(w)
        except ValueError as e:
            st.error(str(e))


def curves(run_ids: list[str]) -> pd.DataFrame:
    rows = []
    for run_id in run_ids:
        m = run_metrics(con, run_id)
        rows += [
            {"run": run_id, "step": e["step"], "loss": e["loss"], "kind": "train"}
            for e in m["train"]
        ]
        rows += [
            {"run": run_id, "step": e["step"], "loss": e["eval_loss"], "kind": "validation"}
            for e in m["eval"]
        ]
    return pd.DataFrame(rows, columns=["run", "step", "loss", "kind"])


@st.fragment(run_every=3)
def live_ui():
    con = db()
    refresh_all(con)
    active = runs_store.list_runs(con, kind="train", states=("running", "queued"))
    for run_id, state, run_dir in active[["id", "state", "run_dir"]].values:
        m = run_metrics(con, run_id)
        p = m["progress"] or {"step": 0, "total_steps": 1, "eta_s": None}
        eta = f", about {p['eta_s']:.0f} s left" if p.get("eta_s") is not None else ""
        st.progress(
            min(1.0, p["step"] / max(p["total_steps"], 1)),
            text=f"{run_id} · {state} · step {p['step']}/{p['total_steps']}{eta}",
        )
        if m["alarm"]:
            st.error(f"Overfitting alarm at step {m['alarm']['step']}: {m['alarm']['message']}")
        data = curves([run_id])
        if not data.empty:
            st.altair_chart(
                alt.Chart(data).mark_line(point=True).encode(x="step:Q", y="loss:Q", color="kind:N")
            )
        if st.button("Cancel", key=f"train_cancel_{run_id}"):
            runs.cancel_run(con, run_id)
        if m["eval"] and m["eval"][-1].get("samples"):
            with st.expander(f"Validation summaries at step {m['eval'][-1]['step']}"):
                for sample in m["eval"][-1]["samples"]:
                    st.markdown(f"**{sample['id']}**: {sample['summary']}")
        with st.expander("Log"):
            st.code(jobs.log_tail(run_dir, 30) or "(empty)")


live_ui()
sweeps_ui(con, user, base, config)

st.subheader("Runs")
table = runs_store.list_runs(con, kind="train")
if table.empty:
    st.info("No training runs yet.")
    st.stop()
summary = []
for r in table.itertuples():
    cfg = json.loads(r.config)
    s = run_metrics(con, r.id)["summary"] or {}
    summary.append(
        {
            "run": r.id,
            "state": r.state,
            "dataset": cfg.get("dataset_version"),
            "method": cfg.get("method"),
            "lr": cfg.get("learning_rate"),
            "steps": s.get("steps"),
            "best val loss": s.get("best_eval_loss"),
            "best ROUGE-L": s.get("best_rouge_l"),
            "tokens/s": s.get("train_tokens_per_s"),
            "seconds": s.get("train_seconds"),
            "overfitting": s.get("overfitting"),
            "reason": r.reason,
        }
    )
st.dataframe(pd.DataFrame(summary), hide_index=True)
chosen = st.multiselect("Overlay runs' curves", table["id"].tolist(), key="train_overlay")
if chosen:
    st.altair_chart(
        alt.Chart(curves(chosen))
        .mark_line(point=True)
        .encode(x="step:Q", y="loss:Q", color="run:N", strokeDash="kind:N")
    )
