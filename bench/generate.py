"""Drafting throughput: batched generation against a one-document-at-a-time loop.

    python bench/generate.py [--docs 32] [--batch-sizes 4,8,16,32] [--max-input-tokens 400]

Uses the real default model (SmolLM2-135M-Instruct, fp32 on CPU / bf16 on GPU), greedy decoding,
documents from ../shared/data/congress119/demo_200.jsonl cut to --max-input-tokens prompt
tokens. The loop calls summarize_batch on one document at a time; each batch size runs the same
documents and must give identical summaries. Prints documents/s and generated tokens/s, then
the largest batch size against plain `model.generate` on the same padded prompts (in input order,
no length sorting, no hooks) with `speed-up over HF generate: N.Nx`, and the time to Chat's first
text chunk for a ~400-token prompt. Results: bench/results/generate-cpu.txt.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "congress119" / "demo_200.jsonl"
sys.path.insert(0, str(ROOT))


def machine() -> str:
    import torch

    if torch.cuda.is_available():
        return f"GPU {torch.cuda.get_device_name(0)}, torch {torch.__version__}"
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"CPU {cpu}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads, "
        f"torch {torch.__version__}"
    )


def load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def row(mode, results, seconds, cpu, loop_seconds, same):
    tokens = sum(r.n_generated_tokens for r in results)
    print(
        f"{mode:<14}{seconds:8.1f}{cpu:8.1f}{len(results) / seconds:8.3f}{tokens:8d}"
        f"{tokens / seconds:10.1f}{loop_seconds / seconds:10.2f}  {same}",
        flush=True,
    )


def timed(model, tokenizer, documents, settings, one_at_a_time=False):
    from engine.models.generation import summarize_batch

    start, cpu = time.perf_counter(), sum(os.times()[:2])
    if one_at_a_time:
        results = [summarize_batch(model, tokenizer, [d], settings)[0] for d in documents]
    else:
        results = summarize_batch(model, tokenizer, documents, settings)
    return results, time.perf_counter() - start, sum(os.times()[:2]) - cpu


def plain_generate(model, tokenizer, documents, settings):
    """Plain `model.generate` over the same prompts, batch_size at a time in input order: the
    baseline. Returns (summaries, seconds)."""
    import torch

    from engine.models.generation import generation_kwargs, prompt_budget, prompt_ids
    from engine.models.prompts import DEFAULT_INSTRUCTION

    budget = prompt_budget(model, settings)
    prompts = [prompt_ids(tokenizer, d, DEFAULT_INSTRUCTION, budget)[0] for d in documents]
    kwargs = generation_kwargs(model, tokenizer, settings)
    texts, start = [], time.perf_counter()
    for i in range(0, len(prompts), settings.batch_size):
        batch = tokenizer.pad(
            {"input_ids": prompts[i : i + settings.batch_size]}, return_tensors="pt"
        ).to(model.device)
        with torch.inference_mode():
            out = model.generate(**batch, **kwargs)
        for tokens in out[:, batch["input_ids"].shape[1] :].tolist():
            n = next((k for k, t in enumerate(tokens) if t in kwargs["eos_token_id"]), len(tokens))
            texts.append(tokenizer.decode(tokens[:n], skip_special_tokens=True).strip())
    return texts, time.perf_counter() - start


def chat_first_chunk(model, tokenizer, document: str) -> float:
    """Seconds from stream_chat's call to its first text chunk, for the ~400-token document."""
    from engine.models.generation import GenerationSettings, stream_chat

    start = time.perf_counter()
    chunks = stream_chat(
        model, tokenizer, [{"role": "user", "content": document}], GenerationSettings(8)
    )
    next(chunks)
    seconds = time.perf_counter() - start
    chunks.close()
    return seconds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=32)
    parser.add_argument("--batch-sizes", default="4,8,16,32")
    parser.add_argument("--max-input-tokens", type=int, default=400)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    args = parser.parse_args(argv)
    if not DATA.exists():
        print(f"{DATA} is absent: nothing to measure.")
        return 0

    from dataclasses import replace

    from engine.models.embedded import DEFAULT_MODEL
    from engine.models.generation import GenerationSettings, load_model

    documents = [json.loads(line)["document"] for line in DATA.open(encoding="utf-8")]
    documents = documents[: args.docs]
    settings = GenerationSettings(
        max_new_tokens=args.max_new_tokens, batch_size=1, max_input_tokens=args.max_input_tokens
    )
    model, tokenizer = load_model(DEFAULT_MODEL)
    print(f"machine: {machine()}")
    print(
        f"model: {DEFAULT_MODEL} ({next(model.parameters()).dtype}), {len(documents)} documents, "
        f"prompts <= {settings.max_input_tokens} tokens, greedy, "
        f"max_new_tokens {settings.max_new_tokens}"
    )
    timed(model, tokenizer, documents[:2], replace(settings, max_new_tokens=4), True)  # warm-up
    print(f"load average before: {load()}")

    reference, seconds, cpu = timed(model, tokenizer, documents, settings, one_at_a_time=True)
    n_cut = sum(r.truncated for r in reference)
    print(f"{n_cut}/{len(documents)} documents cut to fit the prompt limit\n")
    print(
        f"{'mode':<14}{'seconds':>8}{'cpu s':>8}{'docs/s':>8}{'tokens':>8}{'tokens/s':>10}"
        f"{'speed-up':>10}  identical to one at a time"
    )
    row("one at a time", reference, seconds, cpu, seconds, "-")
    loop_seconds = seconds
    for size in [int(s) for s in args.batch_sizes.split(",")]:
        results, seconds, cpu = timed(
            model, tokenizer, documents, replace(settings, batch_size=size)
        )
        same = [r.text for r in results] == [r.text for r in reference]
        row(f"batch {size}", results, seconds, cpu, loop_seconds, "yes" if same else "NO")
    size = replace(settings, batch_size=max(int(s) for s in args.batch_sizes.split(",")))
    ours, seconds, _ = timed(model, tokenizer, documents, size)
    plain, plain_seconds = plain_generate(model, tokenizer, documents, size)
    same = [r.text for r in ours] == plain
    print(
        f"\nbatch {size.batch_size}: ours {seconds:.1f} s, "
        f"plain model.generate {plain_seconds:.1f} s, identical: {'yes' if same else 'NO'}"
    )
    print(f"speed-up over HF generate: {plain_seconds / seconds:.1f}x")
    cut = tokenizer.decode(tokenizer(documents[0])["input_ids"][:380], skip_special_tokens=True)
    print(f"chat first chunk, ~400-token prompt: {chat_first_chunk(model, tokenizer, cut):.2f} s")
    print(f"load average after: {load()} (above ~0.5 means other work shared the CPU)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
