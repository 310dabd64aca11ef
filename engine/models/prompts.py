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


# The chat template given to a tokenizer that has none (a base model, not an instruct one):
# plain "User:"/"Assistant:" turns, each answer closed by the tokenizer's own eos token, so
# generation stops where training taught it to and no token is added (the embeddings keep
# their size). It does what TRL's `chat_template_path` does with a .jinja file, but where the
# tokenizer is opened (engine/models/embedded.py open_tokenizer), so drafting, training,
# evaluation, serving and export all prompt such a model identically; the trained run's
# tokenizer and an exported model save it as their chat template. Newlines are Jinja strings:
# transformers renders templates with trim_blocks, which eats a newline after a tag.
PLAIN_CHAT_TEMPLATE = (
    "{{ bos_token if bos_token else '' }}"
    "{% for message in messages %}"
    "{{ message['role'] | capitalize + ':\\n' + message['content'] }}"
    "{% if message['role'] == 'assistant' %}{{ eos_token }}{% else %}{{ '\\n\\n' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:\\n' }}{% endif %}"
)


def ensure_chat_template(tokenizer):
    """`tokenizer`, given PLAIN_CHAT_TEMPLATE when it has no chat template of its own."""
    if not tokenizer.chat_template:
        tokenizer.chat_template = PLAIN_CHAT_TEMPLATE
    return tokenizer
