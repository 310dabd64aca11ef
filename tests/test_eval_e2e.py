"""End to end on real bills (slow): a quick LoRA fine-tune of the default model writes summaries
of held-out bills with a higher ROUGE-2 than the base model. The split, training and evaluation
are bench/heldout.py's, with which bench/evaluate.py measures the same at full size
(bench/results/evaluate-*.txt); here short bills and five steps keep it to about a minute
on 2 CPU cores."""

from __future__ import annotations

import pytest

from bench.heldout import evaluate_model, fine_tune, read_bills, short, split_bills

MAX_WORDS = 80  # short bills: short prompts and summaries, fast steps
MAX_LENGTH = 224  # tokens per training example; prompts at evaluation get the same room
MAX_NEW_TOKENS = 40  # the short bills' reference summaries: median 30 words


@pytest.mark.slow
@pytest.mark.heavy
def test_a_quick_fine_tune_beats_the_base_model_on_held_out_bills(home, congress_train):
    from engine.models.embedded import default_model_dir
    from engine.models.generation import GenerationSettings
    from engine.training.config import TrainConfig

    sides, _ = split_bills(read_bills(congress_train))
    seen = {b[f] for b in sides["train"] for f in ("title", "summary")}
    assert not any(b["title"] in seen or b["summary"] in seen for b in sides["test"])
    train = short(sides["train"], MAX_WORDS, 20)
    test = short(sides["test"], MAX_WORDS, 16)

    base = str(default_model_dir())
    config = TrainConfig(
        base_model=base,
        learning_rate=1e-3,
        lr_scheduler="constant",
        warmup_ratio=0.0,
        max_steps=5,
        batch_size=4,
        max_length=MAX_LENGTH,
        max_new_tokens=MAX_NEW_TOKENS,
        rouge_eval_samples=0,
        early_stopping_patience=0,
    )
    trained = fine_tune(home / "train", config, train, [])  # no validation: the last weights
    assert trained["steps"] == 5

    settings = GenerationSettings(
        max_new_tokens=MAX_NEW_TOKENS, max_input_tokens=MAX_LENGTH - MAX_NEW_TOKENS
    )
    before = evaluate_model(home / "base", base, None, test, settings, semantic=False)
    after = evaluate_model(home / "tuned", base, trained["final_dir"], test, settings, False)
    assert [r["document_id"] for r in after["rows"]] == [b["id"] for b in test]
    assert after["summary"]["rouge2"]["mean"] > before["summary"]["rouge2"]["mean"]
