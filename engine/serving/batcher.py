"""Dynamic batching for the API server: requests that arrive together (see Batcher.next_batch)
or wait while a batch runs are generated together as one left-padded `model.generate`
call, the project's generation path (engine/models/generation.py: load_model,
generation_kwargs, stop_ids). Each row streams its own tokens: a StoppingCriteria sees every
new token of every row, hands each row's new text to its request, and stops a row on its own
end-of-turn token, stop string, max_tokens or a client that went away.

Rows join a batch only with compatible settings: greedy requests together whatever their
max_tokens; sampled ones with the same temperature and top_p; a seeded sampled request alone,
so its seed alone decides its tokens. Greedy output does not depend on the batch beyond float
rounding: left padding plus position ids from the attention mask give a padded row the
positions it has alone (tests/test_serving.py checks a batched request against the same request
alone, token for token).

transformers 5's continuous batching (`generate_batch`, `init_continuous_batching`) runs on
CPU here but measured ~4x slower than one batched `generate` for 8 short chats on 2 cores
(20 s against 5.5 s), and it switches the model's attention implementation, slowing later
plain `generate` calls; so this module batches per call. The cost: a request that arrives
while a batch runs waits for that batch to end.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

from engine.models.generation import (
    GenerationSettings,
    generation_kwargs,
    load_model,
    prompt_budget,
    prompt_ids,
    stop_ids,
)
from engine.models.prompts import DEFAULT_INSTRUCTION

log = logging.getLogger(__name__)
GAP_MS = 10.0  # a batch leaves once no request has arrived for this long
GREEDY_BELOW = 1e-5  # a temperature this small means greedy (dividing by it overflows)


class Busy(Exception):
    """Too many requests are waiting for the model (Limits.max_queue)."""


class LoadedModel:
    """A model ready to serve: weights, tokenizer, stop tokens and the prompt instruction of
    its model.json. Requests hold on to the one they started with, so a hot swap never changes
    the model under a running request."""

    def __init__(self, spec: dict, model=None, tokenizer=None):
        if model is None:
            model, tokenizer = load_model(spec["path"], spec.get("adapter"))
        self.spec, self.model, self.tokenizer = spec, model, tokenizer
        self.model_id = spec["model_id"]
        self.instruction = spec.get("instruction") or DEFAULT_INSTRUCTION
        self.stops = frozenset(stop_ids(model, tokenizer))

    def same_weights(self, spec: dict) -> bool:
        return (spec.get("path"), spec.get("adapter")) == (
            self.spec.get("path"),
            self.spec.get("adapter"),
        )

    def with_spec(self, spec: dict) -> LoadedModel:
        """The same weights under a new model.json (another id or instruction)."""
        return LoadedModel(spec, self.model, self.tokenizer)

    def _budget(self, max_new_tokens: int) -> int:
        return prompt_budget(self.model, GenerationSettings(max_new_tokens=max_new_tokens))

    def chat_prompt(self, messages: list[dict], max_new_tokens: int) -> list[int]:
        """Token ids of a chat in the model's template, the assistant turn opened (as
        generation.stream_chat builds it). Raises ValueError when it leaves no room."""
        text = self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        budget = self._budget(max_new_tokens)
        if len(ids) > budget:
            raise ValueError(
                f"The messages are {len(ids)} tokens, over the {budget} this model can read "
                f"with max_tokens={max_new_tokens}: shorten them or lower max_tokens."
            )
        return ids

    def summary_prompt(self, document: str, max_new_tokens: int) -> list[int]:
        """Token ids asking for a summary of `document` with the stored prompt template, the
        document cut at a token boundary when it is too long (as drafting does)."""
        ids, _cut = prompt_ids(
            self.tokenizer, document, self.instruction, self._budget(max_new_tokens)
        )
        return ids


class Job:
    """One answer being generated. `deliver(kind, payload)` is called from the batcher thread:
    ("text", new text), then ("done", finish reason: stop | length | cancelled) or
    ("error", message)."""

    def __init__(
        self,
        engine: LoadedModel,
        prompt: list[int],
        max_new_tokens: int,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int | None = None,
        stop: tuple[str, ...] = (),
        deliver: Callable[[str, object], None] | None = None,
    ):
        self.engine, self.prompt, self.max_new_tokens = engine, prompt, max_new_tokens
        self.temperature = temperature if temperature >= GREEDY_BELOW else 0.0
        self.top_p, self.seed = top_p, seed
        self.stop = tuple(s for s in stop if s)
        self._longest = max((len(s) for s in self.stop), default=0)
        self.deliver = deliver or (lambda kind, payload: None)
        self.cancelled = threading.Event()  # set when the client has gone
        self.tokens: list[int] = []  # generated, end-of-turn token excluded
        self.text = ""  # the text delivered so far
        self.finish_reason: str | None = None
        self.submitted = time.monotonic()
        self.first_token_at: float | None = None

    def group(self) -> tuple:
        """Jobs with the same group can share a generate call."""
        if self.temperature <= 0:
            return (id(self.engine), "greedy")
        if self.seed is not None:
            return (id(self.engine), "seeded", id(self))
        return (id(self.engine), self.temperature, self.top_p)

    def step(self, token: int):
        """Take the row's next generated token."""
        if self.cancelled.is_set():
            return self.finish("cancelled")
        if token in self.engine.stops:
            return self.finish("stop")
        self.tokens.append(token)
        if self.first_token_at is None:
            self.first_token_at = time.monotonic()
        text = self.engine.tokenizer.decode(self.tokens, skip_special_tokens=True)
        if self.stop:
            start = max(0, len(self.text) - self._longest)
            hits = [i for s in self.stop if (i := text.find(s, start)) >= 0]
            if hits:
                self._emit(text[: max(min(hits), len(self.text))])
                return self.finish("stop")
        if len(self.tokens) >= self.max_new_tokens:
            self._emit(text)
            return self.finish("length")
        # Hold back a character whose bytes are not all out yet, and what could begin a stop.
        safe = len(text.rstrip("\ufffd"))
        if self.stop:
            safe = min(safe, len(text) - self._longest + 1)
        self._emit(text[:safe])

    def _emit(self, text: str):
        if len(text) > len(self.text):
            delta, self.text = text[len(self.text) :], text
            self.deliver("text", delta)

    def finish(self, reason: str):
        if self.finish_reason is None:
            self.finish_reason = reason
            self.deliver("done", reason)

    def fail(self, message: str):
        if self.finish_reason is None:
            self.finish_reason = "error"
            self.deliver("error", message)


class Batcher:
    """A daemon thread that takes jobs from a queue and generates them in batches. `limits()`
    gives the current Limits (max_batch_size, batch_wait_ms, max_queue), re-read per batch."""

    def __init__(self, limits: Callable):
        self._limits = limits
        self._pending: deque[Job] = deque()
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._loop, name="tuneloop-batcher", daemon=True)
        self.n_batches = 0  # batches run since start, and the rows they held
        self.n_rows = 0

    def start(self) -> Batcher:
        self._thread.start()
        return self

    def submit(self, jobs: list[Job]):
        with self._cond:
            if len(self._pending) + len(jobs) > self._limits().max_queue:
                raise Busy(f"{len(self._pending)} requests are waiting for the model.")
            self._pending.extend(jobs)
            self._cond.notify()

    def waiting(self) -> int:
        return len(self._pending)

    def next_batch(self) -> list[Job]:
        """Wait for work and for late-comers, then take the oldest job and every compatible job
        behind it (up to max_batch_size). Late-comers may join while they keep arriving: the
        batch leaves once GAP_MS pass without a new request, or batch_wait_ms after its first,
        or when it is full. Clients answered together come back a few milliseconds apart; a
        batch that leaves without some of them makes those wait for a whole batch (8 clients:
        a fixed 5 ms window 2.15x the naive loop, this 2.75x; bench/results/serve-cpu.txt)."""
        with self._cond:
            while True:
                while not self._pending:
                    self._cond.wait()
                limits = self._limits()
                deadline = self._pending[0].submitted + limits.batch_wait_ms / 1000
                while len(self._pending) < limits.max_batch_size:
                    quiet = self._pending[-1].submitted + min(GAP_MS, limits.batch_wait_ms) / 1000
                    left = min(deadline, quiet) - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
                for job in [j for j in self._pending if j.cancelled.is_set()]:
                    self._pending.remove(job)
                    job.finish("cancelled")  # gone before it started: no compute for it
                if not self._pending:
                    continue
                key, batch, rest = self._pending[0].group(), [], deque()
                for job in self._pending:
                    fits = job.group() == key and len(batch) < limits.max_batch_size
                    (batch if fits else rest).append(job)
                self._pending = rest
                return batch

    def _loop(self):
        while True:
            batch = self.next_batch()
            try:
                run_batch(batch)
            except Exception as e:  # noqa: BLE001 - fail this batch's requests, serve the next
                log.exception("generation failed")
                for job in batch:
                    job.fail(f"Generation failed: {type(e).__name__}: {e}")
            self.n_batches += 1
            self.n_rows += len(batch)


def _row_steps(jobs: list[Job]):
    """A StoppingCriteria that hands each row's new token to its job and stops finished rows
    (transformers then pads them while the others go on)."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    class RowSteps(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            done = []
            for job, token in zip(jobs, input_ids[:, -1].tolist()):
                if job.finish_reason is None:
                    job.step(token)
                done.append(job.finish_reason is not None)
            return torch.tensor(done, dtype=torch.bool, device=input_ids.device)

    return StoppingCriteriaList([RowSteps()])


def run_batch(jobs: list[Job]):
    """Generate every job of one group in a single left-padded generate call."""
    import torch

    engine, first = jobs[0].engine, jobs[0]
    model, tokenizer = engine.model, engine.tokenizer
    width = max(len(job.prompt) for job in jobs)
    pad = tokenizer.pad_token_id
    input_ids = [[pad] * (width - len(job.prompt)) + job.prompt for job in jobs]
    mask = [[0] * (width - len(job.prompt)) + [1] * len(job.prompt) for job in jobs]
    settings = GenerationSettings(
        max_new_tokens=max(job.max_new_tokens for job in jobs),
        temperature=first.temperature,
        top_p=first.top_p,
    )
    seeded = first.temperature > 0 and first.seed is not None
    if seeded:
        torch.manual_seed(first.seed)  # this thread is the only one that samples
    try:
        with torch.inference_mode():
            model.generate(
                input_ids=torch.tensor(input_ids, device=model.device),
                attention_mask=torch.tensor(mask, device=model.device),
                stopping_criteria=_row_steps(jobs),
                **generation_kwargs(model, tokenizer, settings),
            )
    finally:
        if seeded:
            torch.seed()  # the next unseeded request samples afresh
    for job in jobs:
        job.finish("length")  # a row transformers ended without our criteria seeing it
