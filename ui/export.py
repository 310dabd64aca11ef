"""The "Export model" action (Compare page, admins): merged safetensors weights, the tokenizer,
generation settings and a model card, written under `<data folder>/exports/` with a .tar.gz to
download. The work is engine/serving/export.py's; this draws the button and the result."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from engine.auth import can
from engine.serving.export import GGUF_HINT, export_to_data_folder
from ui.text import plain


def export_ui(con, model_id: str):
    """A button that exports `model_id` (admins only; nothing is drawn for others) and, once
    exported, the archive's download button."""
    user = st.session_state.get("user")
    if not can(user, "export_model"):
        return
    key = f"compare_export_{model_id}"
    st.caption(
        f"Export **{plain(model_id)}** for use outside Tuneloop: a LoRA adapter is merged into its "
        "base; the folder loads with transformers' `from_pretrained` and carries a model card."
    )
    if st.button(f"Export {plain(model_id)}", key=f"{key}_button"):
        with st.spinner("Writing the model folder and its archive…"):
            try:
                st.session_state[key] = str(export_to_data_folder(con, model_id, user).archive)
            except (ValueError, RuntimeError, OSError) as e:
                st.error(str(e))
    archive = Path(st.session_state.get(key) or "")
    if not archive.name or not archive.is_file():
        return
    folder = archive.with_name(archive.name.removesuffix(".tar.gz"))
    st.success(f"Exported to {plain(folder)} ({archive.stat().st_size / 1e6:,.0f} MB archive).")
    st.download_button(
        f"Download {archive.name}",
        lambda: archive.read_bytes(),  # read on click only: model archives are large
        file_name=archive.name,
        mime="application/gzip",
        key=f"{key}_download",
    )
    st.caption("For llama.cpp or Ollama, convert it with llama.cpp's script:")
    st.code(GGUF_HINT.format(folder=folder), language="bash")
