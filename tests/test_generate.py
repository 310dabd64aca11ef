"""Generation and the drafting job, on a tiny random-weight model of the default architecture
(the real tokenizer); one slow test drafts with the real default model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.jobs.runfolder import poll, read_events, read_json, start_worker
from engine.labelling import worker
from engine.models import drafting, generation
from engine.models.generation import (
    GenerationSettings,
    Result,
    prompt_ids,
    prompt_text,
    summarize_batch,
)
from engine.models.prompts import DEFAULT_INSTRUCTION, build_messages, training_record

ROOT = Path(__file__).resolve().parents[1]
WORDS = "the committee shall report on funds for rural schools before March 2026".split()


def text(n_words: int, seed: int = 0) -> str:
    return " ".join(WORDS[(i * 7 + seed) % len(WORDS)] for i in range(n_words))


@pytest.fixture(scope="session")
def real_model_dir(tmp_path_factory) -> Path:
    """The converted default model, converted once per session in a temporary data folder."""
    from engine.models.embedded import default_model_dir

    previous = os.environ.get("TUNELOOP_HOME")
    os.environ["TUNELOOP_HOME"] = str(tmp_path_factory.mktemp("home"))
    try:
        return default_model_dir(progress=lambda message: None)
    finally:
        if previous is None:
            del os.environ["TUNELOOP_HOME"]
        else:
            os.environ["TUNELOOP_HOME"] = previous


@pytest.fixture(scope="session")
def tiny_model_dir(real_model_dir, tmp_path_factory) -> Path:
    """A 2-layer Llama with random weights, the default model's tokenizer and a 256-token
    context, saved like any model folder."""
    import torch
    from transformers import AutoConfig, AutoTokenizer, LlamaConfig, LlamaForCausalLM

    real = AutoConfig.from_pretrained(real_model_dir)
    config = LlamaConfig(
        vocab_size=real.vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=256,
        bos_token_id=real.bos_token_id,
        eos_token_id=real.eos_token_id,
        pad_token_id=real.pad_token_id,
        tie_word_embeddings=True,
        # Wider than the default 0.02, whose random model answers every prompt with the same
        # special token: outputs that differ by document make the comparisons meaningful.
        initializer_range=0.1,
    )
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny")
    LlamaForCausalLM(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(real_model_dir).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny(tiny_model_dir):
    return generation.load_model(str(tiny_model_dir))


def test_settings_are_checked():
    with pytest.raises(ValueError, match="batch_size"):
        GenerationSettings(batch_size=0)
    with pytest.raises(ValueError, match="temperature"):
        GenerationSettings(temperature=-1)
    with pytest.raises(ValueError, match="top_p"):
        GenerationSettings(top_p=0)


def test_load_model_pads_on_the_left(tiny):
    model, tokenizer = tiny
    assert tokenizer.padding_side == "left" and tokenizer.pad_token_id is not None
    assert not model.training


def test_training_text_starts_with_the_inference_prompt(tiny):
    """The fine-tune sees exactly the prompt that drafting and serving send."""
    _, tokenizer = tiny
    record = training_record("A bill about water.", "It funds wells.", "Summarize briefly.")
    training = tokenizer.apply_chat_template(
        record["prompt"] + record["completion"], tokenize=False
    )
    inference = prompt_text(tokenizer, "A bill about water.", "Summarize briefly.")
    assert training.startswith(inference)
    assert inference.endswith("<|im_start|>assistant\n")


def test_batched_greedy_equals_one_at_a_time(tiny):
    model, tokenizer = tiny
    documents = [text(n, seed) for seed, n in enumerate((5, 60, 17, 3, 90, 33, 41))]
    settings = GenerationSettings(max_new_tokens=12, batch_size=1)
    lengths = {len(prompt_ids(tokenizer, d, DEFAULT_INSTRUCTION, 10_000)[0]) for d in documents}
    assert len(lengths) == len(documents)  # every batch is padded
    one_at_a_time = [summarize_batch(model, tokenizer, [d], settings)[0] for d in documents]
    for size in (3, 7):
        batched = summarize_batch(
            model, tokenizer, documents, GenerationSettings(max_new_tokens=12, batch_size=size)
        )
        assert batched == one_at_a_time
    assert len({r.text for r in one_at_a_time}) == len(documents)


def test_long_document_is_cut_to_fit_and_flagged(tiny):
    model, tokenizer = tiny
    settings = GenerationSettings(max_new_tokens=16)
    budget = generation.prompt_budget(model, settings)
    assert budget == 256 - 16
    long_doc, short_doc = text(3000), text(10)
    ids, cut = prompt_ids(tokenizer, long_doc, DEFAULT_INSTRUCTION, budget)
    assert cut and len(ids) <= budget
    rendered = tokenizer.decode(ids)
    assert DEFAULT_INSTRUCTION in rendered and rendered.endswith("<|im_start|>assistant\n")
    assert len(ids) > budget - 5  # cut at the limit, not far before it
    long_result, short_result = summarize_batch(model, tokenizer, [long_doc, short_doc], settings)
    assert long_result.truncated and not short_result.truncated

    capped = GenerationSettings(max_new_tokens=16, max_input_tokens=100)
    assert generation.prompt_budget(model, capped) == 100
    ids, cut = prompt_ids(tokenizer, text(200), DEFAULT_INSTRUCTION, 100)
    assert cut and len(ids) <= 100
    with pytest.raises(ValueError, match="instruction alone"):
        prompt_ids(tokenizer, long_doc, DEFAULT_INSTRUCTION, 30)


def test_stream_chat_streams_the_greedy_reply_and_stops_when_closed(tiny):
    import torch

    model, tokenizer = tiny
    messages = build_messages("A bill about water.")
    settings = GenerationSettings(max_new_tokens=10)
    streamed = "".join(generation.stream_chat(model, tokenizer, messages, settings))
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt")
    ids = ids["input_ids"] if hasattr(ids, "keys") else ids
    with torch.inference_mode():
        out = model.generate(ids, max_new_tokens=10, do_sample=False)
    assert streamed == tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)

    calls = []
    hook = model.register_forward_hook(lambda *args: calls.append(1))
    try:
        chunks = generation.stream_chat(model, tokenizer, messages, GenerationSettings(150))
        next(chunks)
        chunks.close()
    finally:
        hook.remove()
    assert len(calls) < 50


def start_run(run_dir: Path, model_dir: Path, n_docs: int, batch_size: int = 2) -> list[dict]:
    documents = [{"document_id": f"doc-{i}", "text": text(8 + 5 * i, i)} for i in range(n_docs)]
    config = drafting.DraftConfig(
        model=str(model_dir),
        model_id="tiny",
        prompt_version=3,
        generation=GenerationSettings(max_new_tokens=6, batch_size=batch_size),
    )
    drafting.write_run(run_dir, config, documents)
    return documents


def draft_lines(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "drafts.jsonl").read_text().splitlines()]


def test_drafting_cancels_within_a_batch_and_resumes_with_the_rest(
    tiny_model_dir, tmp_path, monkeypatch
):
    run_dir = tmp_path / "run"
    documents = start_run(run_dir, tiny_model_dir, n_docs=7)
    drafted_per_call = []
    real_summarize = generation.summarize_batch

    def counting(model, tokenizer, docs, settings, instruction, on_step=None):
        drafted_per_call.append(len(docs))
        if len(drafted_per_call) == 2:
            (run_dir / "cancel").touch()  # the user presses Cancel during the second batch
        return real_summarize(model, tokenizer, docs, settings, instruction, on_step=on_step)

    monkeypatch.setattr(generation, "summarize_batch", counting)
    assert drafting.run_drafting(run_dir) == "cancelled"
    assert poll(run_dir).state == "cancelled"
    # The second batch stopped at its next token and its incomplete drafts were dropped.
    assert drafted_per_call == [2, 2] and len(draft_lines(run_dir)) == 2

    assert drafting.run_drafting(run_dir) == "succeeded"
    assert drafted_per_call == [2, 2, 2, 2, 1]  # only the 5 documents left
    lines = draft_lines(run_dir)
    assert sorted(r["document_id"] for r in lines) == sorted(d["document_id"] for d in documents)
    assert all(r["model"] == "tiny" and r["prompt_version"] == 3 for r in lines)
    assert all(r["summary"] and r["n_generated_tokens"] > 0 for r in lines)
    assert not any(r["truncated"] for r in lines)
    progress = [e for e in read_events(run_dir)[0] if e["type"] == "progress"]
    assert progress[-1]["done"] == progress[-1]["total"] == 7
    assert {e["phase"] for e in progress} >= {"loading model", "generating"}
    assert progress[-1]["eta_s"] == 0.0

    assert drafting.run_drafting(run_dir) == "succeeded"  # nothing left: no model work
    assert len(drafted_per_call) == 5


def test_a_half_written_draft_line_is_dropped_on_resume(tmp_path):
    good = json.dumps({"document_id": "a", "summary": "s"}) + "\n"
    (tmp_path / "drafts.jsonl").write_text(good + '{"document_id": "b", "summ')
    assert drafting.drafted_ids(tmp_path) == {"a"}
    assert (tmp_path / "drafts.jsonl").read_text() == good


def test_bad_run_folder_fails_with_a_reason(tmp_path, capsys):
    run_dir = tmp_path / "run"
    drafting.write_run(run_dir, drafting.DraftConfig(model="some-model"), [])
    (run_dir / "documents.jsonl").write_text('{"document_id": 1}\n')
    assert worker.main([str(run_dir)]) == 1
    state = read_json(run_dir / "status.json")
    assert state["state"] == "failed" and "line 1" in state["reason"]
    assert "error:" in capsys.readouterr().err


@pytest.mark.slow
def test_worker_process_drafts_without_importing_the_database(tiny_model_dir, tmp_path):
    run_dir = tmp_path / "run"
    start_run(run_dir, tiny_model_dir, n_docs=3)
    script = (
        "import json, sys; from engine.labelling.worker import main; rc = main([sys.argv[1]]); "
        "print(json.dumps([m for m in ('duckdb', 'store', 'streamlit') if m in sys.modules])); "
        "sys.exit(rc)"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(run_dir)], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
    assert len(draft_lines(run_dir)) == 3


@pytest.mark.slow
def test_worker_started_by_the_app_drafts(tiny_model_dir, tmp_path):
    if "draft-worker" not in (ROOT / "engine" / "__main__.py").read_text():
        pytest.skip(
            "engine/__main__.py does not route draft-worker to engine.labelling.worker.main yet"
        )
    run_dir = tmp_path / "run"
    start_run(run_dir, tiny_model_dir, n_docs=3)
    start_worker(run_dir, ["draft-worker", str(run_dir)], env={"PYTHONPROFILEIMPORTTIME": "1"})
    deadline = time.time() + 120
    while poll(run_dir).state == "running" and time.time() < deadline:
        time.sleep(0.5)
    assert poll(run_dir).state == "succeeded", (run_dir / "worker.log").read_text()[-2000:]
    assert len(draft_lines(run_dir)) == 3
    imported = [
        line.split("|")[-1].strip()
        for line in (run_dir / "worker.log").read_text().splitlines()
        if line.startswith("import time")
    ]
    assert "engine.models.generation" in imported  # the import log works
    assert not {"duckdb", "store", "streamlit"} & set(imported)


@pytest.mark.slow
def test_real_default_model_drafts_a_summary(real_model_dir):
    model, tokenizer = generation.load_model(str(real_model_dir))
    document = (
        "A BILL to rename the post office at 12 Main Street in Springfield, Ohio, as the "
        "Jane Doe Post Office Building. The Act takes effect on January 1, 2026."
    )
    [result] = summarize_batch(model, tokenizer, [document], GenerationSettings(max_new_tokens=48))
    assert isinstance(result, Result) and not result.truncated
    assert result.n_generated_tokens > 3 and len(result.text.split()) > 3
