"""Bring your own model: tiny random models of the common decoder architectures (Llama, Qwen2,
Qwen3, Gemma2, Gemma3, Mistral, Phi-3), built offline from their transformers config classes and
saved with the default tokenizer, go through the real training worker (LoRA on "all-linear"; a
full fine-tune for two), the generation code drafting and evaluation use, and the model export;
a base model whose tokenizer has no chat template gets prompts.PLAIN_CHAT_TEMPLATE everywhere."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.models.prompts import PLAIN_CHAT_TEMPLATE, build_messages, training_record
from tests.test_train import BILLS, WEATHER, make_run, tiny_config

# Width 64 (4 heads of 16, 2 key/value heads), 2 layers: each model saves in well under a second.
SMALL = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=8192,
)
# config class, its own keyword arguments (head_dim where the class takes one).
ARCHITECTURES = {
    "llama": ("LlamaConfig", dict(head_dim=16, tie_word_embeddings=True)),
    "qwen2": ("Qwen2Config", dict(tie_word_embeddings=True)),
    "qwen3": ("Qwen3Config", dict(head_dim=16, tie_word_embeddings=True)),
    "gemma2": ("Gemma2Config", dict(head_dim=16, query_pre_attn_scalar=16, sliding_window=32)),
    "gemma3": ("Gemma3TextConfig", dict(head_dim=16, query_pre_attn_scalar=16, sliding_window=32)),
    "mistral": ("MistralConfig", dict(head_dim=16, sliding_window=None)),
    "phi3": ("Phi3Config", dict(tie_word_embeddings=False)),
}
MODEL_END_OF_TURN = "<|endoftext|>"  # the models' own eos, beside the tokenizer's <|im_end|>
DOCUMENTS = [d for d, _ in BILLS[:3]]


def build_model(folder: Path, config_class: str, changes: dict, tokenizer) -> Path:
    import transformers
    from transformers import AutoModelForCausalLM, set_seed

    end_of_turn = tokenizer.convert_tokens_to_ids(MODEL_END_OF_TURN)
    config = getattr(transformers, config_class)(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=[tokenizer.eos_token_id, end_of_turn],
        pad_token_id=tokenizer.pad_token_id,
        **SMALL,
        **changes,
    )
    set_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    model.generation_config.eos_token_id = [tokenizer.eos_token_id, end_of_turn]
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def architectures(tiny_model, tmp_path_factory) -> dict[str, Path]:
    """A folder per architecture: random weights, the default model's tokenizer."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    root = tmp_path_factory.mktemp("architectures")
    return {
        name: build_model(root / name, config_class, changes, tokenizer)
        for name, (config_class, changes) in ARCHITECTURES.items()
    }


@pytest.fixture(scope="session")
def no_template_model(tiny_model, tmp_path_factory) -> Path:
    """The tiny Llama with a tokenizer that has no chat template, as a base model ships."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    tokenizer.chat_template = None
    folder = build_model(tmp_path_factory.mktemp("no-template"), *ARCHITECTURES["llama"], tokenizer)
    assert AutoTokenizer.from_pretrained(folder).chat_template is None
    return folder


def forced(model, token_id: int):
    """A forward hook on the output layer that makes `token_id` every step's most likely."""

    def hook(module, inputs, logits):
        logits[..., token_id] += 1e4
        return logits

    return model.get_output_embeddings().register_forward_hook(hook)


def summarize(model, tokenizer, force: int | None = None, max_new_tokens: int = 6):
    """Greedy summaries of DOCUMENTS through engine/models/generation.py, as drafting and
    evaluation make them, optionally with one token forced likely."""
    from engine.models.generation import GenerationSettings, summarize_batch

    handle = forced(model, force) if force is not None else None
    try:
        settings = GenerationSettings(max_new_tokens=max_new_tokens)
        return summarize_batch(model, tokenizer, DOCUMENTS, settings, "Summarize.")
    finally:
        if handle is not None:
            handle.remove()


def loaded(folder: Path, adapter: Path | None = None):
    from engine.models.generation import load_model

    return load_model(str(folder), str(adapter) if adapter else None)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_generation_stops_at_the_models_own_end_of_turn(architectures, arch):
    from engine.models.generation import stop_ids

    model, tokenizer = loaded(architectures[arch])
    end_of_turn = tokenizer.convert_tokens_to_ids(MODEL_END_OF_TURN)
    assert {end_of_turn, tokenizer.eos_token_id} <= set(stop_ids(model, tokenizer))
    stopped = summarize(model, tokenizer, force=end_of_turn)
    assert [r.n_generated_tokens for r in stopped] == [0] * len(DOCUMENTS)
    words = summarize(model, tokenizer, force=tokenizer.convert_tokens_to_ids("the"))
    assert all(r.n_generated_tokens == 6 and r.text == "the" * 6 for r in words)


def _run(tmp_path, model: Path, **changes) -> Path:
    from engine.training.worker import train

    config = tiny_config(model, max_steps=2, eval_every_steps=2, rouge_eval_samples=0, **changes)
    run = make_run(tmp_path / "run", config, BILLS[:4], WEATHER[:2])
    assert train(run) == "succeeded", json.loads((run / "status.json").read_text())["reason"]
    return run


def _linear_names(folder: Path) -> set[str]:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder)
    layers = model.model.layers
    return {n.split(".")[-1] for n, m in layers.named_modules() if isinstance(m, torch.nn.Linear)}


@pytest.mark.slow
@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_lora_on_all_linear_layers_trains_and_generates(architectures, arch, tmp_path):
    folder = architectures[arch]
    run = _run(tmp_path, folder)
    final = run / "final"
    assert (final / "adapter_model.safetensors").exists()
    assert (final / "tokenizer.json").exists() and (final / "chat_template.jinja").exists()
    adapted = json.loads((final / "adapter_config.json").read_text())["target_modules"]
    assert {n.split(".")[-1] for n in adapted} == _linear_names(
        folder
    )  # "all-linear": every projection of every block
    evals = [e for e in map(json.loads, (run / "events.jsonl").open()) if e["type"] == "eval"]
    assert [e["step"] for e in evals] == [0, 2]  # the base model, then the adapter
    results = summarize(*loaded(folder, final))
    assert len(results) == len(DOCUMENTS) and all(r.n_generated_tokens <= 6 for r in results)


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["qwen3", "gemma2"])
def test_a_full_fine_tune_trains_and_generates(architectures, arch, tmp_path):
    run = _run(tmp_path, architectures[arch], method="full")
    final = run / "final"
    assert (final / "model.safetensors").exists() and (final / "tokenizer.json").exists()
    assert (
        json.loads((final / "config.json").read_text())["model_type"]
        == json.loads((architectures[arch] / "config.json").read_text())["model_type"]
    )
    assert len(summarize(*loaded(final))) == len(DOCUMENTS)


def _export(con, tmp_path, base: Path, adapter: Path | None = None) -> Path:
    from engine.serving.export import export_model
    from store import registry as reg_store

    reg_store.register_model(con, "byo-base", "base", str(base))
    model_id = "byo-base"
    if adapter is not None:
        reg_store.register_model(con, "byo-lora", "lora", str(adapter), "byo-base")
        model_id = "byo-lora"
    return export_model(con, model_id, tmp_path / "export").folder


def test_a_non_llama_model_exports_and_loads_with_plain_transformers(architectures, con, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = _export(con, tmp_path, architectures["qwen3"])
    assert {"model.safetensors", "config.json", "generation_config.json", "README.md"} <= {
        p.name for p in folder.iterdir()
    }
    assert AutoModelForCausalLM.from_pretrained(folder).config.model_type == "qwen3"
    generation = json.loads((folder / "generation_config.json").read_text())
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert tokenizer.convert_tokens_to_ids(MODEL_END_OF_TURN) in generation["eos_token_id"]


def test_the_plain_template_is_a_prefix_of_the_trained_chat_and_ends_turns_with_eos(
    no_template_model,
):
    from engine.models.embedded import open_tokenizer

    tokenizer = open_tokenizer(no_template_model)
    assert tokenizer.chat_template == PLAIN_CHAT_TEMPLATE
    record = training_record("A bill.", "Its summary.", "Summarize.")
    prompt = tokenizer.apply_chat_template(
        record["prompt"], tokenize=False, add_generation_prompt=True
    )
    chat = tokenizer.apply_chat_template(record["prompt"] + record["completion"], tokenize=False)
    start = tokenizer.bos_token or ""
    assert prompt == start + "User:\nSummarize.\n\nDocument:\nA bill.\n\nAssistant:\n"
    assert chat == prompt + "Its summary." + tokenizer.eos_token  # the answer ends the turn
    assert build_messages("A bill.", "Summarize.") == record["prompt"]


@pytest.mark.slow
def test_a_model_without_a_chat_template_trains_generates_and_exports_with_the_plain_one(
    no_template_model, con, tmp_path
):
    from transformers import AutoTokenizer

    run = _run(tmp_path, no_template_model)
    final = run / "final"
    assert AutoTokenizer.from_pretrained(final).chat_template == PLAIN_CHAT_TEMPLATE
    model, tokenizer = loaded(no_template_model, final)
    stopped = summarize(model, tokenizer, force=tokenizer.eos_token_id)
    assert [r.n_generated_tokens for r in stopped] == [0] * len(DOCUMENTS)
    exported = _export(con, tmp_path, no_template_model, final)
    assert AutoTokenizer.from_pretrained(exported).chat_template == PLAIN_CHAT_TEMPLATE
