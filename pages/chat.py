"""Chat: talk to any registered model, or ask it to summarize a document from the store, pasted
or uploaded. Tokens stream as they are generated; history is kept per user in the store.
Reviewers chat with the production model only, always sampled, settings hidden
(engine.evaluation.preference.chat_settings: blind A/B stays blind). Admins summarize with the
settings of the model's own evaluation (shown, and changeable, under "Generation settings").
A document to summarize is measured in bytes, then characters, against the models' bounds
(engine/models/bounds.py) before it is tokenized, and the upload widget takes no more than those
bounds allow. Messages show as text; answers as Markdown without images. Every answer takes 👍/👎
and "Correct this" (edited in place), and a summary of a document "Save as example": they go to
the feedback queue on the Review page (engine/labelling/feedback.py)."""

import json
import uuid
from dataclasses import fields

import pandas as pd
import streamlit as st

from engine.auth import can
from engine.evaluation.preference import chat_settings
from engine.evaluation.runs import EVAL_SETTINGS
from engine.labelling.feedback import document_of, record_chat_feedback
from engine.models.bounds import folder_bounds, model_bounds
from engine.models.generation import GenerationSettings, stream_chat
from engine.models.prompts import build_messages
from engine.models.registry import current_prompt, ensure_default_model, production_model, resolve
from store import chat as chat_store
from store import evals as evals_store
from store import examples as examples_store
from store import feedback as fb_store
from store import registry as reg_store
from ui.common import db, generation_ui, load_model_cached, model_ui, require_login
from ui.text import no_remote_content, stream_markdown

require_login()
con = db()
user = st.session_state["user"]["name"]
st.title("Chat")
past = {c["conversation"]: c for c in chat_store.conversations(con, user)}


def chat_label(conversation: str) -> str:
    """A past chat as a person remembers it: when, and what they first asked (trimmed)."""
    if conversation not in past:
        return "New chat"
    first, started = past[conversation]["first_message"], past[conversation]["started_at"]
    if "\n\nDocument:\n" in first:  # a Summarize request (engine/models/prompts.py build_messages)
        first = "Summarize: " + first.split("\n\nDocument:\n", 1)[1]
    first = " ".join(first.split()) or "(no message)"
    first = first if len(first) <= 48 else first[:47].rstrip() + "…"
    return f"{started:%d %b %H:%M} · {first}"


def evaluation_settings(model_id: str) -> GenerationSettings:
    """The settings of `model_id`'s latest succeeded evaluation (EVAL_SETTINGS when it has
    none), so that Chat's summary of a document is the one Compare scored."""
    evals = evals_store.list_evaluations(con)
    done = evals[(evals["model_id"] == model_id) & (evals["state"] == "succeeded")]
    if done.empty:
        return EVAL_SETTINGS
    stored = json.loads(done["generation"].iloc[0])
    return GenerationSettings(
        **{f.name: stored[f.name] for f in fields(GenerationSettings) if f.name in stored}
    )


@st.cache_data(show_spinner=False)
def bounds_of(path: str, adapter: str | None):
    """The model's input bounds: from its folder's files, else from the loaded model."""
    return folder_bounds(path) or model_bounds(*load_model_cached(path, adapter))


if "chat_conversation" not in st.session_state:
    st.session_state["chat_conversation"] = uuid.uuid4().hex[:8]
with st.sidebar:
    if st.button("New chat", key="chat_new"):
        st.session_state["chat_conversation"] = uuid.uuid4().hex[:8]
    current = st.session_state["chat_conversation"]
    if past:
        options = list(past) if current in past else [current, *past]
        st.selectbox("Earlier chats", options, format_func=chat_label, key="chat_conversation")
conversation = st.session_state["chat_conversation"]

c = st.columns(2)
if can(st.session_state["user"], "compare"):  # admins: any model, side by side, any settings
    with c[0]:
        model_a = model_ui(con, "Model", "chat_model")
    others = [m for m in reg_store.list_models(con)["id"] if m != model_a]
    model_b = c[1].selectbox("Side by side with (optional)", ["—", *others], key="chat_model_b")
    settings = generation_ui("chat", evaluation_settings(model_a))
else:  # reviewers: the production model, sampled (see the docstring)
    with st.spinner("Preparing the embedded default model (converted once, ~20 s)…"):
        ensure_default_model(con, progress=lambda msg: None)
    model_a, model_b, settings = production_model(con), "—", None
    c[0].caption(f"Model: {model_a} (the production model)")

models = [model_a] + ([model_b] if model_b != "—" else [])
refs = [resolve(con, m) for m in models]
bounds = min((bounds_of(r.path, r.adapter) for r in refs), key=lambda b: b.max_chars)
with st.expander("Summarize a document"):
    example_id = st.number_input("Example id from the store", 0, key="chat_example")
    pasted = st.text_area("…or paste a document", key="chat_paste", max_chars=bounds.max_chars)
    upload = st.file_uploader(
        "…or upload a .txt file",
        type=["txt", "md"],
        key="chat_upload",
        max_upload_size=bounds.max_upload_mb,  # the browser's check; the size is checked below
    )
    summarize = st.button("Summarize", key="chat_summarize")

if flash := st.session_state.pop("chat_flash", None):
    st.toast(flash)


def give_feedback(message_id: int, message: str, **changes) -> bool:
    try:
        record_chat_feedback(con, st.session_state["user"], message_id, **changes)
    except ValueError as e:
        st.error(str(e))
        return False
    st.session_state["chat_flash"] = message
    return True


def answer_ui(message_id: int, answer: str, given: dict | None, document: str | None):
    """An answer with its feedback, keyed by message id: thumbs, "Correct this" (the answer
    becomes an editor in place) and, for a summary of a document, "Save as example"."""
    corrected = given["corrected"] if given and isinstance(given["corrected"], str) else None
    editing = f"chat_editing_{message_id}"
    if st.session_state.get(editing):
        text = st.text_area(
            "Correct the answer", corrected or answer, key=f"chat_correct_{message_id}"
        )
        c = st.columns(3)
        if c[0].button("Save correction", key=f"chat_correct_save_{message_id}"):
            if give_feedback(message_id, "Correction saved for review.", corrected=text):
                st.session_state[editing] = False
                st.rerun()
        if document and c[1].button("Save as example", key=f"chat_example_save_{message_id}"):
            saved = "Queued for review as an example."
            if give_feedback(message_id, saved, corrected=text, propose=True):
                st.session_state[editing] = False
                st.rerun()
        if c[2].button("Cancel", key=f"chat_correct_cancel_{message_id}"):
            st.session_state[editing] = False
            st.rerun()
    else:
        st.markdown(no_remote_content(corrected or answer))
    if given and given["status"] != "queued":
        st.caption(f"Feedback reviewed: {given['status']}.")
        return
    if corrected:
        st.caption("Your correction; the model's own answer is kept for review.")
    c = st.columns([2, 2, 2, 4], vertical_alignment="center")
    stored = None if not given or pd.isna(given["rating"]) else int(given["rating"])
    with c[0]:
        rating = st.feedback("thumbs", key=f"chat_fb_{message_id}", default=stored)
    if rating != stored and give_feedback(message_id, "Rating saved for review.", rating=rating):
        st.toast(st.session_state.pop("chat_flash"))
    proposed = bool(given and given["proposed"])
    if proposed:
        c[3].caption("Proposed as an example: waiting for review.")
    if not st.session_state.get(editing):
        if c[1].button("Correct this", key=f"chat_correct_open_{message_id}"):
            st.session_state[editing] = True
            st.rerun()
        if (
            document
            and not proposed
            and c[2].button("Save as example", key=f"chat_example_{message_id}")
        ):
            if give_feedback(message_id, "Queued for review as an example.", propose=True):
                st.rerun()


history = chat_store.conversation(con, user, conversation)
message_ids = fb_store.conversation_ids(con, user, conversation)
given = fb_store.by_messages(con, message_ids)
asked = None
for message_id, m in zip(message_ids, history):
    with st.chat_message(m["role"]):
        if m["model_id"]:
            st.caption(m["model_id"])
            answer_ui(message_id, m["content"], given.get(message_id), document_of(asked))
        else:
            st.text(m["content"])
            asked = m["content"]
st.caption(
    "Ratings, corrections and saved examples go to the review queue, where reviewers see the "
    "question and the answer."
)

prompt = st.chat_input("Message the model", key="chat_input")
messages = None


def document_to_summarize() -> str:
    """The stored, pasted or uploaded document, measured before it is read or tokenized:
    ValueError when it cannot fit the models' context (a client may skip the widget's cap)."""
    row = examples_store.get_example(con, int(example_id)) if example_id else None
    if row and row["clean_text"]:
        document = row["clean_text"]
    elif pasted:
        document = pasted
    elif upload:
        bounds.check_bytes(upload.size)
        document = upload.getvalue().decode("utf-8", "replace")
    else:
        return ""
    bounds.check_chars(len(document))
    return document


if summarize:
    try:
        document = document_to_summarize()
    except ValueError as e:
        st.error(str(e))
        document = ""
    else:
        if not document.strip():
            st.error("Give an example id, paste a document or upload a file to summarize.")
    if document.strip():
        _, instruction = current_prompt(con)
        messages = build_messages(document, instruction)
elif prompt:
    messages = [
        {"role": m["role"], "content": m["content"]}
        for m in history
        if m["role"] == "user" or m["model_id"] == model_a
    ]
    messages.append({"role": "user", "content": prompt})

if messages:
    settings = chat_settings(con, st.session_state["user"], models, settings)
    chat_store.add_message(con, user, conversation, "user", messages[-1]["content"])
    with st.chat_message("user"):
        st.text(messages[-1]["content"])
    answered = True
    for model_id, ref in zip(models, refs):
        model, tokenizer = load_model_cached(ref.path, ref.adapter)
        with st.chat_message("assistant"):
            st.caption(model_id)
            try:
                reply = stream_markdown(st, stream_chat(model, tokenizer, messages, settings))
            except ValueError as e:
                st.error(str(e))
                answered = False
                continue
        chat_store.add_message(con, user, conversation, "assistant", reply, model_id)
    if answered:
        st.rerun()  # the answers again from the history, with their feedback widgets
