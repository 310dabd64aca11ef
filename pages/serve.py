"""Serve (admins): the production model behind an OpenAI-compatible API. Start and stop the
server, see its state, the model it serves and live request counts and latency (the app's
poller ingests its request log), and create (shown once), list and revoke API keys."""

import time

import altair as alt
import streamlit as st

from engine.scheduler import catch_up_api_log
from engine.serving import keys, runs
from store import serving as serving_store
from ui.common import db, require
from ui.live import live_fragment

require("serve")
con = db()
user = st.session_state["user"]
st.title("Serve")
st.caption(
    "An OpenAI-compatible API for the production model: any OpenAI client talks to it with "
    "an API key. Promoting a model swaps the running server to it within seconds."
)
if flash := st.session_state.pop("serve_flash", None):
    st.toast(flash)


def traffic_chart(per_minute):
    """Answered and failed requests per minute, failures in red; the minutes are UTC, as in
    the table (the store gives both naive UTC times, drawn as they are)."""
    rows = per_minute.assign(answered=per_minute["requests"] - per_minute["errors"])
    rows = rows.melt("minute", ["answered", "errors"], var_name="result", value_name="count")
    color = alt.Color(
        "result:N", scale=alt.Scale(domain=["answered", "errors"], range=["#4c78a8", "#d62728"])
    )
    x = alt.X("minute:T", title="minute (UTC)", axis=alt.Axis(format="%H:%M"))
    return alt.Chart(rows).mark_bar().encode(x=x, y=alt.Y("count:Q", stack=True), color=color)


@live_fragment(3)
def server_ui():
    """The server's state and traffic; reads files and the store only."""
    con = db()
    catch_up_api_log(con)  # the poller does it too; this keeps the figures current
    state = runs.server_state()
    health = runs.check_health(state.url, timeout=1.0) if state.running and state.url else None
    cols = st.columns(4)
    cols[0].metric("State", state.state if not health else health["status"])
    cols[1].metric("Model", state.model_id or "—")
    stats = serving_store.request_stats(con, since=time.time() - 3600)
    # Errors are bad news: red with a warning sign, never a green "up" delta.
    errors = stats["errors"]
    cols[2].metric(
        "Requests (last hour)", f"{stats['requests']:,}",
        f"⚠ {errors:,} error{'s' * (errors != 1)}" if errors else "no errors",
        delta_color="red" if errors else "off", delta_arrow="off",
    )  # fmt: skip
    if stats["p50_ms"] is None:
        cols[3].metric("Latency p50 / p95", "—")
    else:
        cols[3].metric(
            "Latency p50 / p95", f"{stats['p50_ms'] / 1000:.2f} / {stats['p95_ms'] / 1000:.2f} s"
        )
    st.caption(
        f"{stats['prompt_tokens']:,} prompt and {stats['completion_tokens']:,} generated tokens "
        "in the last hour."
    )
    if state.url:
        st.code(state.url + "/v1", language=None)
    if state.loading:
        st.info(f"Loading {state.loading}: the current model answers until it is ready.")
    if state.error:
        st.error(state.error)
    per_minute = serving_store.requests_per_minute(con, since=time.time() - 3600)
    if not per_minute.empty:
        st.altair_chart(traffic_chart(per_minute), width="stretch")
    with st.expander("Recent requests (times in UTC)"):
        st.dataframe(
            serving_store.recent_requests(con, 50), hide_index=True,
            column_config={"received": st.column_config.DatetimeColumn(
                "received (UTC)", format="YYYY-MM-DD HH:mm:ss")},
        )  # fmt: skip
    if state.running and st.button("Stop the server", key="serve_stop"):
        runs.stop_server(con, user)
        st.rerun()


server_ui()
if runs.model_outdated(con):
    st.warning("The server's model.json differs from the production model or prompt template.")
    if st.button("Serve the current production model", key="serve_publish"):
        runs.publish_model(con)
        st.rerun()

if not runs.server_state().running:
    with st.form("serve_start_form"):
        st.subheader("Start the server")
        c = st.columns(2)
        host = c[0].text_input("Host", "127.0.0.1", key="serve_host")
        port = c[1].number_input("Port", 0, 65535, 8000, key="serve_port")
        cert = c[0].text_input(
            "TLS certificate file (HTTPS; needed beyond 127.0.0.1)", key="serve_cert"
        )
        key_file = c[1].text_input("TLS private key file", key="serve_keyfile")
        if st.form_submit_button("Start", type="primary"):
            try:
                runs.start_server(con, user, host, int(port), cert or None, key_file or None)
                st.session_state["serve_flash"] = "Server starting: the model loads in seconds."
                st.rerun()  # drawn again: the state above, without the start form
            except ValueError as e:
                st.error(str(e))

st.subheader("API keys")
with st.form("serve_key_form", clear_on_submit=True):
    c = st.columns(4)
    name = c[0].text_input("Name (who uses it)", key="serve_key_name")
    days = c[1].number_input("Expires after days (0: never)", 0, 3650, 90, key="serve_key_days")
    limit = c[2].number_input(
        "Requests per minute (0: default)", 0, 100_000, 0, key="serve_key_rpm"
    )
    texts = c[3].checkbox("Log prompts and answers", key="serve_key_texts")
    if st.form_submit_button("Create key"):
        try:
            new = keys.create_key(con, user, name, days or None, texts, limit or None)
            st.success(f"Key {name!r} created. Copy it now: it is shown only once.")
            st.code(new, language=None)
        except ValueError as e:
            st.error(str(e))

table = keys.list_keys(con, include_revoked=st.toggle("Show revoked keys", key="serve_revoked"))
st.dataframe(table, hide_index=True)
active = table.loc[table["state"] != "revoked", "name"].tolist()
if active:
    c = st.columns([3, 1])
    doomed = c[0].selectbox("Key", active, key="serve_revoke_name", label_visibility="collapsed")
    if c[1].button("Revoke", key="serve_revoke"):
        keys.revoke_key(con, user, doomed)
        st.rerun()

with st.expander("Connect a client"):
    url = (runs.server_state().url or "http://127.0.0.1:8000") + "/v1"
    st.code(
        "from openai import OpenAI\n\n"
        f'client = OpenAI(base_url="{url}", api_key="tl-…")\n'
        'reply = client.chat.completions.create(model="production", temperature=0,\n'
        '    messages=[{"role": "user", "content": "Summarize: …"}])\n'
        "print(reply.choices[0].message.content)",
        language="python",
    )
