"""API server throughput: 1, 8 and 32 concurrent clients against the server's dynamic batching,
side by side with a naive loop that generates the same requests one at a time; and the
server's memory (RSS) before and after 1,000 requests.

    python bench/serve.py [--requests 64] [--max-tokens 32] [--words 80] [--memory-requests 1000]
                          [--plain-batches] [--batch-wait-ms MS] [--clients 1,8,32]

Uses the real default model (SmolLM2-135M-Instruct, fp32 on CPU), greedy chat completions
("Summarize: <the first --words words of a bill>" from ../shared/data/congress119/demo_200.jsonl,
or the packaged sample set when that is absent). The server is the real one
(`python -m engine serve-worker`, its own process, a temporary serve folder and key); the
clients are threads with keep-alive HTTP connections (http.client, light on the CPU they share
with the server). The naive loop runs in this process, with the server stopped: one
`model.generate` per request, the same prompts and settings; every mode cycles over the
naive loop's --naive-requests prompts, so their rates compare. --plain-batches adds plain
`model.generate` on batches of 8 and 32 of them: what batching alone gains on this machine.
Prints requests/s, p50/p95 latency and generated tokens/s per mode, and the server's RSS. Results:
bench/results/serve-cpu.txt.
"""

from __future__ import annotations

import argparse
import http.client
import json
import queue
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BILLS = ROOT.parent / "shared" / "data" / "congress119" / "demo_200.jsonl"
SAMPLE = ROOT / "engine" / "data" / "sample_set" / "personal_injury.jsonl"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def documents(words: int) -> list[str]:
    source = BILLS if BILLS.exists() else SAMPLE
    rows = [json.loads(line) for line in source.open(encoding="utf-8")]
    return [" ".join(row["document"].split()[:words]) for row in rows]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start_server(folder: Path, model_dir: str, key: str, max_tokens: int, wait_ms=None):
    from engine.serving.folder import Limits, hash_key, write_json

    write_json(folder / "model.json", {"model_id": "bench", "path": model_dir, "adapter": None})
    keys = [{"name": "bench", "key_hash": hash_key(key), "rate_limit": 1_000_000}]
    write_json(folder / "keys.json", {"keys": keys})
    limits = Limits(
        max_tokens=max_tokens, default_max_tokens=max_tokens, requests_per_minute=1_000_000,
        max_queue=4096,
    )  # fmt: skip
    if wait_ms is not None:
        limits.batch_wait_ms = wait_ms
    write_json(folder / "limits.json", limits.to_dict())
    log = open(folder / "server.log", "ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine", "serve-worker", str(folder), "--port", "0"],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    while True:
        status = json.loads((folder / "status.json").read_text() or "{}") if (
            folder / "status.json"
        ).exists() else {}  # fmt: skip
        if status.get("state") == "ready":
            return proc, status["url"]
        if proc.poll() is not None or status.get("state") == "failed":
            raise RuntimeError((folder / "server.log").read_text()[-2000:])
        time.sleep(0.2)


def run_clients(url: str, key: str, prompts: list[str], clients: int, max_tokens: int):
    """Send every prompt once from `clients` threads; returns (seconds, latencies, tokens)."""
    host, port = url.split("//")[1].rsplit(":", 1)
    todo: queue.Queue = queue.Queue()
    for prompt in prompts:
        todo.put(prompt)
    latencies, tokens, errors = [], [], []

    def client():
        conn = http.client.HTTPConnection(host, int(port), timeout=600)
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        while True:
            try:
                prompt = todo.get_nowait()
            except queue.Empty:
                break
            body = {
                "model": "production",
                "messages": [{"role": "user", "content": prompt}],
                "max_tokens": max_tokens,
                "temperature": 0,
            }
            start = time.perf_counter()
            conn.request("POST", "/v1/chat/completions", json.dumps(body), headers)
            response = conn.getresponse()
            answer = json.loads(response.read())
            latencies.append(time.perf_counter() - start)
            if response.status != 200:
                errors.append(answer)
                continue
            tokens.append(answer["usage"]["completion_tokens"])
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(f"{len(errors)} requests failed, e.g. {errors[0]}")
    return time.perf_counter() - start, latencies, tokens


def naive_loop(model_dir: str, prompts: list[str], max_tokens: int):
    """The same requests, one model.generate each, in this process."""
    import torch

    from engine.models.generation import GenerationSettings, generation_kwargs, load_model

    model, tokenizer = load_model(model_dir)
    kwargs = generation_kwargs(model, tokenizer, GenerationSettings(max_new_tokens=max_tokens))
    stops = set(kwargs["eos_token_id"])
    latencies, tokens = [], []
    start = time.perf_counter()
    for prompt in prompts:
        began = time.perf_counter()
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
        )
        ids = torch.tensor([tokenizer(text, add_special_tokens=False)["input_ids"]])
        with torch.inference_mode():
            out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), **kwargs)
        new = out[0, ids.shape[1] :].tolist()
        tokens.append(next((k for k, t in enumerate(new) if t in stops), len(new)))
        latencies.append(time.perf_counter() - began)
    return time.perf_counter() - start, latencies, tokens


def plain_batches(model_dir: str, prompts: list[str], max_tokens: int, size: int):
    """The same requests `size` at a time, one left-padded model.generate per batch, in this
    process: what batching alone can gain on this machine, with no server around it. Latency
    is each batch's wall time (every row waits for the batch)."""
    import torch

    from engine.models.generation import GenerationSettings, generation_kwargs, load_model

    model, tokenizer = load_model(model_dir)
    tokenizer.padding_side = "left"
    kwargs = generation_kwargs(model, tokenizer, GenerationSettings(max_new_tokens=max_tokens))
    stops = set(kwargs["eos_token_id"])
    latencies, tokens = [], []
    start = time.perf_counter()
    for i in range(0, len(prompts), size):
        began = time.perf_counter()
        texts = [
            tokenizer.apply_chat_template(
                [{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True
            )
            for p in prompts[i : i + size]
        ]
        batch = tokenizer(texts, add_special_tokens=False, return_tensors="pt", padding=True)
        with torch.inference_mode():
            out = model.generate(**batch, **kwargs)
        for new in out[:, batch["input_ids"].shape[1] :].tolist():
            tokens.append(next((k for k, t in enumerate(new) if t in stops), len(new)))
        latencies += [time.perf_counter() - began] * len(texts)
    return time.perf_counter() - start, latencies, tokens


def row(mode, seconds, latencies, tokens, baseline):
    p50 = statistics.median(latencies)
    p95 = statistics.quantiles(latencies, n=20)[-1] if len(latencies) > 1 else latencies[0]
    rps = len(latencies) / seconds
    print(
        f"{mode:<22}{len(latencies):6d}{seconds:9.1f}{rps:8.3f}{p50:8.2f}{p95:8.2f}"
        f"{sum(tokens) / seconds:10.1f}{rps / baseline:9.2f}",
        flush=True,
    )
    return rps


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=64, help="per concurrency level")
    parser.add_argument("--naive-requests", type=int, default=24)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--words", type=int, default=80, help="words of each document sent")
    parser.add_argument("--clients", default="1,8,32")
    parser.add_argument("--memory-requests", type=int, default=1000)
    parser.add_argument("--batch-wait-ms", type=float, help="the server's (default: its own)")
    parser.add_argument(
        "--plain-batches", action="store_true",
        help="also time plain model.generate on batches of 8 and 32: the ceiling of batching",
    )  # fmt: skip
    args = parser.parse_args(argv)

    from generate import load, machine

    from engine.models.embedded import DEFAULT_MODEL, default_model_dir

    model_dir = str(default_model_dir(progress=print))
    docs = documents(args.words)
    # Every mode cycles over the same prompts (the naive loop's), so their rates compare.
    every = [f"Summarize this document.\n\n{d}" for d in docs]
    prompts = every[: args.naive_requests]
    print(f"machine: {machine()}")
    print(
        f"model: {DEFAULT_MODEL} (fp32 on CPU), greedy chat completions, max_tokens "
        f"{args.max_tokens}, documents cut to {args.words} words"
    )
    print(f"load average before: {load()}\n")
    print(
        f"{'mode':<22}{'reqs':>6}{'seconds':>9}{'req/s':>8}{'p50 s':>8}{'p95 s':>8}"
        f"{'tokens/s':>10}{'vs naive':>9}"
    )
    naive = naive_loop(model_dir, prompts[: args.naive_requests], args.max_tokens)
    baseline = len(naive[1]) / naive[0]
    row("naive loop (1 at once)", *naive, baseline)
    for size in (8, 32) if args.plain_batches else ():
        n = max(size, args.naive_requests // size * size)
        chosen = [prompts[i % len(prompts)] for i in range(n)]
        row(
            f"plain generate, {size}/call",
            *plain_batches(model_dir, chosen, args.max_tokens, size),
            baseline,
        )

    key = "tl-" + secrets.token_urlsafe(32)
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_server(Path(tmp), model_dir, key, args.max_tokens, args.batch_wait_ms)
        try:
            run_clients(url, key, prompts[:4], 4, 4)  # warm-up
            for clients in [int(c) for c in args.clients.split(",")]:
                n = args.requests if clients > 1 else max(8, args.requests // 4)
                chosen = [prompts[i % len(prompts)] for i in range(n)]
                result = run_clients(url, key, chosen, clients, args.max_tokens)
                row(f"server, {clients} clients", *result, baseline)
            before = rss_mb(proc.pid)
            many = [every[i % len(every)] for i in range(args.memory_requests)]
            seconds, latencies, _ = run_clients(url, key, many, 8, 4)
            after = rss_mb(proc.pid)
            print(
                f"\nserver RSS {before:.0f} MB before and {after:.0f} MB after "
                f"{len(latencies):,} more requests (8 clients, max_tokens 4, {seconds:.0f} s): "
                f"{after - before:+.0f} MB"
            )
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    print(f"load average after: {load()} (above ~0.5 means other work shared the CPU)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
