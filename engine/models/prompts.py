"""The summarization prompt: one template used by drafting, training, evaluation and serving.

A mismatch between the prompt a model is trained on and the one it is asked with silently ruins
a fine-tune, so everything that talks to a model builds its messages here.
"""

from __future__ import annotations

DEFAULT_INSTRUCTION = (
    "Summarize the following document in a short paragraph. Keep names, dates and amounts "
    "exactly as written and add nothing that the document does not say."
)


def build_messages(document: str, instruction: str = DEFAULT_INSTRUCTION) -> list[dict]:
    """Chat messages asking for a summary of `document`."""
    return [{"role": "user", "content": f"{instruction}\n\nDocument:\n{document}"}]


def training_record(document: str, summary: str, instruction: str = DEFAULT_INSTRUCTION) -> dict:
    """One conversational prompt/completion example, the format TRL's SFTTrainer takes (loss on
    the completion only)."""
    return {
        "prompt": build_messages(document, instruction),
        "completion": [{"role": "assistant", "content": summary}],
    }
