"""The drafting path (summarize_batch: length-sorted, left-padded batches with progress and
log-probability hooks) gives token-identical greedy output to plain `model.generate` on each
prompt alone. No timing here: throughput is bench/generate.py's job."""

from __future__ import annotations

import os

import pytest

from engine.models.generation import (
    GenerationSettings,
    generation_kwargs,
    load_model,
    prompt_budget,
    prompt_ids,
    summarize_batch,
)
from engine.models.prompts import DEFAULT_INSTRUCTION

WORDS = "the bill amends section funding state grant agency report act year shall".split()


def documents(n: int) -> list[str]:
    return [" ".join(WORDS[(i * 5 + k) % len(WORDS)] for k in range(8 + 13 * i)) for i in range(n)]


def plain_generate(model, tokenizer, document: str, settings: GenerationSettings) -> list[int]:
    """Plain model.generate on one prompt, no padding and no hooks: the reference."""
    import torch

    ids, _ = prompt_ids(tokenizer, document, DEFAULT_INSTRUCTION, prompt_budget(model, settings))
    kwargs = generation_kwargs(model, tokenizer, settings)
    with torch.inference_mode():
        out = model.generate(input_ids=torch.tensor([ids]), **kwargs)[0, len(ids) :].tolist()
    n = next((k for k, t in enumerate(out) if t in kwargs["eos_token_id"]), len(out))
    return out[:n]


def assert_identical(model, tokenizer, docs, settings):
    steps = []
    results = summarize_batch(model, tokenizer, docs, settings, on_step=steps.append)
    assert steps  # the progress hook ran and did not change anything
    for doc, result in zip(docs, results):
        reference = plain_generate(model, tokenizer, doc, settings)
        assert result.n_generated_tokens == len(reference)
        assert result.text == tokenizer.decode(reference, skip_special_tokens=True).strip()


def test_batched_drafting_matches_plain_generate_on_the_tiny_model(tiny_model):
    model, tokenizer = load_model(str(tiny_model))
    docs = documents(6)  # prompts of different lengths: every batch but one row is padded
    assert_identical(model, tokenizer, docs, GenerationSettings(max_new_tokens=12, batch_size=4))


@pytest.mark.slow
def test_batched_drafting_matches_plain_generate_on_the_real_model(tmp_path_factory):
    from engine.models.embedded import default_model_dir

    previous = os.environ.get("TUNELOOP_HOME")
    os.environ["TUNELOOP_HOME"] = str(tmp_path_factory.mktemp("home"))
    try:
        folder = default_model_dir(progress=lambda message: None)
    finally:
        if previous is None:
            del os.environ["TUNELOOP_HOME"]
        else:
            os.environ["TUNELOOP_HOME"] = previous
    model, tokenizer = load_model(str(folder))
    docs = documents(4)
    assert_identical(model, tokenizer, docs, GenerationSettings(max_new_tokens=24, batch_size=4))
