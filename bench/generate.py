"""Drafting throughput: batched generation against a one-document-at-a-time loop.

    python bench/generate.py [--docs 32] [--batch-sizes 4,8,16,32] [--max-input-tokens 400]

Uses the real default model (SmolLM2-135M-Instruct, fp32 on CPU / bf16 on GPU), greedy decoding,
documents from ../shared/data/congress119/demo_200.jsonl cut to --max-input-tokens prompt
tokens. The loop calls summarize_batch on one document at a time; each batch size runs the same
documents and must give identical summaries. Prints documents/s and generated tokens/s.
Results: bench/results/generate-cpu.txt.
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
    print(f"load average after: {load()} (above ~0.5 means other work shared the CPU)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
