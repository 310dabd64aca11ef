"""Train: one click retrains with the latest accepted data; live progress, training and
validation curves, the overfitting alarm, log tail and cancel; runs compared side by side."""

import json
import time

import altair as alt
import pandas as pd
import streamlit as st

from engine.followups import followup_plan
from engine.jobs import runfolder
from engine.training.runs import (
    default_config,
    retrain_in_background,
    retrain_status,
    run_metrics,
    start_training,
)
from store import runs as runs_store
from ui.common import db, model_ui, require
from ui.jobs import POLL_EVERY_S, job_ui
from ui.live import live_fragment
from ui.sweeps import sweeps_ui
from ui.train_config import config_ui
from ui.training_data import training_data_ui

require("train")
con = db()
user = st.session_state["user"]
st.title("Train")


def queued(run_id: str, warnings: list[str]):
    """Act first, then draw: remember what to say, and rerun so every view shows the run."""
    st.session_state["train_notice"] = (run_id, warnings)
    # That rerun draws the new run everywhere: live_ui must not rerun it again, which would
    # drop the toast (a toast right before st.rerun() never shows in Streamlit 1.67).
    st.session_state.pop("train_active", None)
    st.rerun()


if notice := st.session_state.pop("train_notice", None):
    st.toast(f"Queued {notice[0]}.")
    for w in notice[1]:
        st.warning(w)

if error := st.session_state.pop("train_error", None):
    st.error(error)

training_data_ui(con)
if default_config(con).rouge_last_eval_only:
    st.caption(
        "On this machine's settings, validation summaries (ROUGE-L) are written only at the last "
        "validation, not for the base model or the rounds between: on a CPU each round costs as "
        "much as a few training steps. The validation loss is still measured every round, and "
        "the test-split evaluation that follows training scores the summaries with 95% CIs."
    )
if st.button("Retrain with the latest accepted data", type="primary", key="train_retrain"):
    try:  # returns at once: the split and freeze run on a thread, shown by preparing_ui
        retrain_in_background(con, user, followup=followup_plan)
    except ValueError as e:
        st.error(str(e))


@live_fragment(1)
def preparing_ui():
    """The one-click retrain while its data is split and frozen; then the run it queued."""
    state = retrain_status(user, forget_finished=True)
    if state is None:
        return
    if state["thread"].is_alive():
        seconds = time.time() - state["started"]
        st.info(f"Preparing the retrain: splitting new data, freezing it ({seconds:.0f} s)…")
    elif state["error"]:
        st.session_state["train_error"] = state["error"]  # drawn by the page, not this poll
        st.rerun()
    else:
        queued(*state["result"])


if retrain_status(user) is not None:  # polls only while a click is being prepared
    preparing_ui()

with st.expander("New run with chosen settings"):
    base = model_ui(con, "Base model", "train_base")
    config = config_ui(default_config(con))
    if st.button("Start this run", key="train_start") and config is not None:
        try:
            queued(*start_training(con, config, base, user, followup=followup_plan))
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


@live_fragment(POLL_EVERY_S)
def live_ui():
    """Queued and running training runs; reads the store only (the poller ingests)."""
    con = db()
    active = runs_store.list_runs(con, kind="train", states=("running", "queued"))
    ids = tuple(active["id"])
    if st.session_state.setdefault("train_active", ids) != ids:  # a run started or ended
        st.session_state["train_active"] = ids
        st.rerun()  # the whole page, so the runs table below shows it
    for run in active.to_dict("records"):
        job_ui(con, run, "train")
        if run["state"] != "running":
            continue
        m = run_metrics(con, run["id"])
        if (m["progress"] or {}).get("loop_eta_s") is not None:
            minutes = max(1, round(m["progress"]["loop_eta_s"] / 60))
            st.caption(
                f"Compare ready in about {minutes} min: the rest of this run at its measured "
                "pace, then the evaluations of the test split."
            )
        if m["alarm"]:
            st.error(f"Overfitting alarm at step {m['alarm']['step']}: {m['alarm']['message']}")
        # The chart's spec is rebuilt only when a new loss arrives: building an Altair spec
        # costs more than everything else this poll does (bench/polling.py).
        seen = (len(m["train"]), len(m["eval"]))
        charts = st.session_state.setdefault("train_live_charts", {})
        cached = charts.get(run["id"])
        if cached is None or cached[0] != seen:
            data = curves([run["id"]])
            spec = None
            if not data.empty:
                chart = alt.Chart(data).mark_line(point=True)
                spec = chart.encode(x="step:Q", y="loss:Q", color="kind:N").to_dict()
            cached = charts[run["id"]] = (seen, spec)
        if cached[1]:
            st.vega_lite_chart(cached[1])
        if m["eval"] and m["eval"][-1].get("samples"):
            with st.expander(f"Validation summaries at step {m['eval'][-1]['step']}"):
                for sample in m["eval"][-1]["samples"]:
                    st.text(f"{sample['id']}: {sample['summary']}")
        with st.expander("Log"):
            st.code(runfolder.log_tail(run["run_dir"], 30) or "(empty)")


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
