"""How long an input a model can take, checked before anything is tokenized.

Tokenizing a 50 MB upload to learn that it is too long costs minutes and gigabytes, so a
document is first measured in bytes, then in characters, against bounds that are sound for the
model's tokenizer: no prompt the model can take is ever refused by them.

- Every token stands for at most `chars_per_token` characters: the longest string in the
  vocabulary (81 for SmolLM2: a newline and 80 spaces). Byte-level BPE vocabularies spell each
  byte as one character, so a token's string is never shorter than the text it decodes to, and
  added tokens (`<|im_start|>`) are in the vocabulary too. (This assumes a normalizer that
  never drops characters, as byte-level and SentencePiece tokenizers have.) So a text of more than
  `context * chars_per_token` characters needs more than `context` tokens, whatever it says.
- UTF-8 spends at most 4 bytes on a character, and an undecodable byte becomes one replacement
  character, so more than 4 bytes per allowed character is more characters than allowed.

Texts inside the bounds are tokenized and checked exactly (engine/models/generation.py).

    bounds = model_bounds(model, tokenizer)
    bounds.check_bytes(upload.size); bounds.check_chars(len(text))
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

BYTES_PER_CHAR = 4  # the most UTF-8 spends on one character
MIB = 1024 * 1024


@dataclass(frozen=True)
class InputBounds:
    tokens: int  # the model's context: no prompt can have more tokens
    chars_per_token: int  # the most characters any one token stands for

    @property
    def max_chars(self) -> int:
        return self.tokens * self.chars_per_token

    @property
    def max_bytes(self) -> int:
        return self.max_chars * BYTES_PER_CHAR

    @property
    def max_upload_mb(self) -> int:
        """The per-widget upload cap (Streamlit counts whole megabytes)."""
        return max(1, math.ceil(self.max_bytes / MIB))

    def check_bytes(self, n_bytes: int) -> None:
        if n_bytes > self.max_bytes:
            raise ValueError(
                f"This file is {n_bytes / MIB:,.1f} MB: far more than the model's "
                f"{self.tokens:,}-token context can take (at most {self.max_bytes / MIB:,.1f} MB). "
                "Summarize a shorter document, or a part of this one."
            )

    def check_chars(self, n_chars: int) -> None:
        if n_chars > self.max_chars:
            raise ValueError(
                f"This document is {n_chars:,} characters: far more than the model's "
                f"{self.tokens:,}-token context can take (at most {self.max_chars:,} characters). "
                "Summarize a shorter document, or a part of this one."
            )


def input_bounds(context_tokens: int, vocabulary: Iterable[str]) -> InputBounds:
    """The bounds of a model whose context is `context_tokens` and whose tokens are spelt
    `vocabulary` (the tokenizer's vocabulary strings, added tokens included)."""
    longest = max((len(token) for token in vocabulary), default=0)
    if context_tokens < 1 or longest < 1:
        raise ValueError("A model needs a context and a vocabulary to bound its input.")
    return InputBounds(tokens=int(context_tokens), chars_per_token=longest)


def model_bounds(model, tokenizer) -> InputBounds:
    """The bounds of a loaded model (engine.models.generation.load_model)."""
    context = getattr(model.config, "max_position_embeddings", None) or tokenizer.model_max_length
    return input_bounds(context, tokenizer.get_vocab())


def folder_bounds(path: str | Path) -> InputBounds | None:
    """The bounds of a local model folder, read from its config.json and tokenizer.json without
    loading either; None when the folder does not say (a Hub id, another tokenizer format)."""
    folder = Path(path)
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        spec = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
        vocab = spec["model"]["vocab"]
        added = [t["content"] for t in spec.get("added_tokens", [])]
        context = config["max_position_embeddings"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if isinstance(vocab, list):  # Unigram vocabularies are [token, score] pairs
        vocab = [entry[0] for entry in vocab]
    return input_bounds(context, [*vocab, *added])
