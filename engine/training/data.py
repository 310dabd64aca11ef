"""Training data for a run: read the exported prompt/completion records, take seeded samples,
and cut over-long documents (never the summary) to fit max_length, the way generation cuts them:
at a token boundary of the user message, checked by rendering the chat template again. An example
whose summary does not fit even with an empty document is left out, and counted.

    examples, documents_cut, summaries_too_long = fit_examples(tokenizer, records, config)

The app also estimates, before a run, how long each training example will be
(`estimate_training_tokens`), so pre-flight can warn when most documents would be cut.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from engine.training.config import TrainConfig


def read_records(path: Path) -> list[dict]:
    """Prompt/completion records of an exported split; [] when the file is absent."""
    if not path.exists():
        return []
    records = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            records.append(
                {"id": row.get("id", n), "prompt": row["prompt"], "completion": row["completion"]}
            )
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError):
            raise ValueError(
                f"{path} line {n} is not a prompt/completion record: export the dataset again."
            ) from None
    return records


def sample(records: list[dict], cap: int | None, seed: int) -> list[dict]:
    """A seeded sample of at most `cap` records, in a seeded order."""
    records = list(records)
    random.Random(seed).shuffle(records)
    return records[:cap] if cap else records


def _count(tokenizer, messages: list[dict], generation_prompt: bool) -> int:
    text = tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=generation_prompt
    )
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def fit_messages(
    tokenizer,
    messages: list[dict],
    budget: int,
    keep_prefix: str = "",
    generation_prompt: bool = False,
) -> tuple[list[dict] | None, bool]:
    """(messages, cut): the last user message's end cut at a token boundary so that the chat has
    at most `budget` tokens, never cutting into `keep_prefix` (the instruction). (None, True)
    when even the prefix alone does not fit."""
    n = _count(tokenizer, messages, generation_prompt)
    if n <= budget:
        return messages, False
    i = max(k for k, m in enumerate(messages) if m["role"] == "user")
    content = messages[i]["content"]
    floor = len(keep_prefix) if content.startswith(keep_prefix) else 0
    ends = [
        end
        for _, end in tokenizer(content, add_special_tokens=False, return_offsets_mapping=True)[
            "offset_mapping"
        ]
    ]
    keep = len(ends) - (n - budget)
    while keep > 0 and ends[keep - 1] > floor:
        # Tokens merge differently at the cut, so count the rendered chat again.
        trial = [
            *messages[:i],
            {**messages[i], "content": content[: ends[keep - 1]]},
            *messages[i + 1 :],
        ]
        n = _count(tokenizer, trial, generation_prompt)
        if n <= budget:
            return trial, True
        keep -= n - budget
    return None, True


def fit_examples(
    tokenizer, records: list[dict], config: TrainConfig
) -> tuple[list[dict], int, int]:
    """Training examples that fit max_length: (examples, documents cut, summaries too long).
    An example whose instruction and summary alone exceed max_length is left out: the trainer
    would otherwise cut its summary, or drop it when its document fills max_length."""
    examples, documents_cut, summaries_too_long = [], 0, 0
    for r in records:
        fitted, cut = fit_messages(
            tokenizer, r["prompt"] + r["completion"], config.max_length, config.instruction
        )
        if fitted is None:
            summaries_too_long += 1
            continue
        documents_cut += cut
        n = len(r["prompt"])
        examples.append({"prompt": fitted[:n], "completion": fitted[n:]})
    return examples, documents_cut, summaries_too_long


def rouge_set(tokenizer, records: list[dict], config: TrainConfig):
    """(ids, prompt token ids, reference summaries) for ROUGE-L, prompts cut like at training."""
    ids, prompts, refs = [], [], []
    for r in records[: config.rouge_eval_samples]:
        budget = config.max_length - config.max_new_tokens
        fitted, _ = fit_messages(tokenizer, r["prompt"], budget, config.instruction, True)
        if fitted is None:
            raise ValueError(
                f"max_length {config.max_length} minus max_new_tokens {config.max_new_tokens} "
                "leaves no room for a document after the instruction: raise max_length."
            )
        text = tokenizer.apply_chat_template(fitted, tokenize=False, add_generation_prompt=True)
        ids.append(r["id"])
        prompts.append(tokenizer(text, add_special_tokens=False)["input_ids"])
        refs.append(r["completion"][-1]["content"])
    return ids, prompts, refs


# SmolLM2's tokenizer: 1.4 tokens per word on the congress bills, 1.75 on the sample cases.
TOKENS_PER_WORD = 1.5
CHAT_TOKENS = 40  # the chat template's role markers and default system prompt


def estimate_training_tokens(con, dataset_id: int, instruction: str) -> list[int]:
    """Estimated tokens of each training example of a dataset version as the trainer will see
    it: the document's counted tokens where the store has them (else its words times
    TOKENS_PER_WORD), plus the summary, the instruction and the chat template. App side only."""
    from store import overview as overview_store

    rows = overview_store.dataset_lengths(con, dataset_id)
    rows = rows[rows["split"] == "train"]
    document = rows["n_tokens"].astype(float).fillna(rows["n_words"] * TOKENS_PER_WORD)
    fixed = CHAT_TOKENS + len(instruction.split()) * TOKENS_PER_WORD
    total = document + rows["n_summary_words"] * TOKENS_PER_WORD + fixed
    return [int(round(t)) for t in total]
