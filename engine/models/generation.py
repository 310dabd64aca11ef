"""Summaries from a model: loading (a base plus an optional LoRA adapter), the chat-formatted
prompt, batched generation that cuts over-long documents openly, and token streaming for Chat.

    from engine.models.generation import GenerationSettings, load_model, summarize_batch
    model, tokenizer = load_model("smollm2-135m-instruct")
    results = summarize_batch(model, tokenizer, documents, GenerationSettings())

Batches are left-padded; transformers derives position ids from the attention mask, so a padded
row sees the same positions as the same prompt alone. Greedy batched outputs match one-at-a-time
outputs token for token on the default model (tests/test_generate.py, bench/generate.py); the
logits themselves differ by float rounding (~1e-5 in fp32) because padded rows change matrix
shapes and attention reduction lengths, so a near-tie between two tokens could in principle
resolve differently. Run `python bench/generate.py` for throughput.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from engine.models.prompts import DEFAULT_INSTRUCTION, build_messages


@dataclass
class GenerationSettings:
    max_new_tokens: int = 128  # cap on the length of each output, in tokens
    temperature: float = 0.0  # 0 = greedy (deterministic); above 0 samples
    top_p: float = 1.0  # nucleus sampling: keep the smallest token set with this mass
    repetition_penalty: float = 1.0  # above 1 discourages repeating tokens; 1 = off
    # Documents per generate call: 32 drafts 3.3x faster than one at a time on 2 CPU cores
    # (bench/results/generate-cpu.txt); lower it if memory runs out or to cancel sooner.
    batch_size: int = 32
    # Cap on the chat-formatted prompt in tokens; None = the model's context - max_new_tokens.
    # Documents are cut (never the instruction) to fit, and the result says so.
    max_input_tokens: int | None = None

    def __post_init__(self):
        if self.max_new_tokens < 1:
            raise ValueError("max_new_tokens must be at least 1.")
        if self.temperature < 0:
            raise ValueError("temperature must be 0 (greedy) or more.")
        if not 0 < self.top_p <= 1:
            raise ValueError("top_p must be in (0, 1].")
        if self.repetition_penalty <= 0:
            raise ValueError("repetition_penalty must be above 0 (1 = off).")
        if self.batch_size < 1:
            raise ValueError("batch_size must be at least 1.")
        if self.max_input_tokens is not None and self.max_input_tokens < 16:
            raise ValueError("max_input_tokens must be at least 16 (or empty for the maximum).")


@dataclass
class Result:
    text: str  # the summary, special tokens removed
    n_generated_tokens: int  # tokens generated before the end-of-turn token
    truncated: bool  # the document was cut to fit the prompt budget
    # Mean log-probability of the generated tokens under the distribution each was chosen from
    # (how sure the model was; None when nothing was generated). Ranks what to review first.
    # Not compared: batching changes it by float rounding (see the module docstring).
    mean_logprob: float | None = field(default=None, compare=False)


def resolve_model(model_ref: str) -> str:
    """A model folder or Hub id; the default model's short name means its converted folder."""
    from engine.models.embedded import DEFAULT_MODEL, default_model_dir

    return str(default_model_dir()) if model_ref == DEFAULT_MODEL else model_ref


def load_model(model_ref: str, adapter: str | None = None):
    """(model, tokenizer) ready to generate: on the GPU in bf16 when there is one, else fp32 on
    CPU; eval mode; left padding. A LoRA adapter folder is applied to the base and merged."""
    import torch
    from transformers import AutoModelForCausalLM

    from engine.models.embedded import open_tokenizer

    model_ref = resolve_model(model_ref)
    cuda = torch.cuda.is_available()
    model = AutoModelForCausalLM.from_pretrained(
        model_ref, dtype=torch.bfloat16 if cuda else torch.float32
    )
    if adapter:
        from peft import PeftModel

        # Merged weights generate as fast as the base model.
        model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    model.to("cuda" if cuda else "cpu").eval()
    # A fresh tokenizer, not models.load_tokenizer's shared one: we change its padding side.
    tokenizer = open_tokenizer(model_ref)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def prompt_text(tokenizer, document: str, instruction: str = DEFAULT_INSTRUCTION) -> str:
    """The exact text the model sees before it answers: the chat template applied to
    prompts.build_messages, with the assistant turn opened. Training export checks against it."""
    return tokenizer.apply_chat_template(
        build_messages(document, instruction), tokenize=False, add_generation_prompt=True
    )


def prompt_budget(model, settings: GenerationSettings) -> int:
    """Most prompt tokens allowed: the context minus room for the answer, or the user's cap."""
    context = getattr(model.config, "max_position_embeddings", None)
    room = context - settings.max_new_tokens if context else None
    if room is not None and room < 16:
        raise ValueError(
            f"max_new_tokens={settings.max_new_tokens} leaves no room for a prompt in this "
            f"model's {context}-token context: lower it."
        )
    caps = [c for c in (room, settings.max_input_tokens) if c is not None]
    return min(caps) if caps else 1_000_000


def _encode(tokenizer, text: str) -> list[int]:
    # The chat template already wrote every special token the model expects.
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def prompt_ids(
    tokenizer, document: str, instruction: str, max_tokens: int
) -> tuple[list[int], bool]:
    """Token ids of the prompt for `document`, cutting the document's end (never the
    instruction) at a token boundary so the prompt has at most max_tokens. Returns (ids, cut)."""
    ids = _encode(tokenizer, prompt_text(tokenizer, document, instruction))
    if len(ids) <= max_tokens:
        return ids, False
    overhead = len(_encode(tokenizer, prompt_text(tokenizer, "", instruction)))
    room = max_tokens - overhead
    if room < 1:
        raise ValueError(
            f"The instruction alone takes {overhead} tokens, more than the {max_tokens} allowed "
            "for a prompt: shorten it or raise max_input_tokens."
        )
    ends = [
        end
        for _, end in tokenizer(document, add_special_tokens=False, return_offsets_mapping=True)[
            "offset_mapping"
        ]
    ]
    while room > 0:
        # Tokens can merge differently at the seams, so check the rendered prompt and retry.
        ids = _encode(tokenizer, prompt_text(tokenizer, document[: ends[room - 1]], instruction))
        if len(ids) <= max_tokens:
            return ids, True
        room -= len(ids) - max_tokens
    return _encode(tokenizer, prompt_text(tokenizer, "", instruction)), True


def generation_kwargs(model, tokenizer, settings: GenerationSettings) -> dict:
    """Keyword arguments for model.generate that mean exactly our settings."""
    kwargs = dict(
        max_new_tokens=settings.max_new_tokens,
        repetition_penalty=settings.repetition_penalty,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=stop_ids(model, tokenizer),
        do_sample=settings.temperature > 0,
    )
    if settings.temperature > 0:
        # top_k=0 turns off transformers' default top-k of 50: only top_p limits sampling.
        kwargs |= dict(temperature=settings.temperature, top_p=settings.top_p, top_k=0)
    return kwargs


def stop_ids(model, tokenizer) -> list[int]:
    """Tokens that end an answer: the tokenizer's end-of-turn plus the model's own eos ids."""
    configured = model.generation_config.eos_token_id
    configured = configured if isinstance(configured, list) else [configured]
    return sorted({tokenizer.eos_token_id, *configured} - {None})


class GenerationStopped(Exception):
    """`on_step` asked generation to stop (a cancel): the batch's summaries are incomplete."""


def _step_hook(on_step, batch_size: int):
    """A StoppingCriteria that calls `on_step(step)` after every generated token and stops
    every sequence when it returns True. It only observes: greedy output is unchanged."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    class StepHook(StoppingCriteria):
        step, stopped = 0, False

        def __call__(self, input_ids, scores, **kwargs):
            self.step += 1
            self.stopped = self.stopped or bool(on_step(self.step))
            return torch.full((input_ids.shape[0],), self.stopped, device=input_ids.device)

    hook = StepHook()
    return hook, StoppingCriteriaList([hook])


def _logprob_hooks():
    """(logits processor, stopping criterion, steps): the processor, last in generate's list,
    keeps the log-softmax of the scores each token is chosen from; the criterion, called once
    the token is appended, reads the chosen token's log-probability into `steps` (one row-wise
    tensor per step). Stopping criteria do not get the scores unless generate keeps them all
    (output_scores: steps × batch × vocabulary floats), hence the pair. Both only observe."""
    import torch
    from transformers import LogitsProcessor, StoppingCriteria

    steps: list = []
    last: dict = {}

    class KeepLogProbs(LogitsProcessor):
        def __call__(self, input_ids, scores):
            last["logp"] = torch.log_softmax(scores.float(), dim=-1)
            return scores

    class ReadChosen(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            steps.append(last["logp"].gather(1, input_ids[:, -1:]).squeeze(1).cpu())
            return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)

    return KeepLogProbs(), ReadChosen(), steps


def summarize_batch(
    model,
    tokenizer,
    documents: list[str],
    settings: GenerationSettings,
    instruction: str = DEFAULT_INSTRUCTION,
    on_step=None,
) -> list[Result]:
    """A summary of each document, in input order. Prompts are sorted by length and generated
    settings.batch_size at a time with left padding, so little compute goes to padding.

    `on_step(step)` (optional) is called after each generated token of a batch; when it
    returns True generation stops and GenerationStopped is raised (a cancel that does not wait
    for a whole batch)."""
    import torch
    from transformers import LogitsProcessorList, StoppingCriteriaList

    budget = prompt_budget(model, settings)
    prompts = [prompt_ids(tokenizer, d, instruction, budget) for d in documents]
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i][0]))
    kwargs = generation_kwargs(model, tokenizer, settings)
    stops = set(kwargs["eos_token_id"])
    results: list[Result | None] = [None] * len(documents)
    for start in range(0, len(order), settings.batch_size):
        rows = order[start : start + settings.batch_size]
        batch = tokenizer.pad(
            {"input_ids": [prompts[i][0] for i in rows]}, padding=True, return_tensors="pt"
        ).to(model.device)
        hook, criteria = _step_hook(on_step, len(rows)) if on_step else (None, None)
        keep, read, steps = _logprob_hooks()
        criteria = StoppingCriteriaList([*(criteria or []), read])
        with torch.inference_mode():
            out = model.generate(
                **batch,
                **kwargs,
                logits_processor=LogitsProcessorList([keep]),
                stopping_criteria=criteria,
            )
        if hook is not None and hook.stopped:
            raise GenerationStopped()
        logps = torch.stack(steps, dim=1) if steps else torch.zeros(len(rows), 0)
        generated = out[:, batch["input_ids"].shape[1] :].tolist()
        for row, (i, tokens) in enumerate(zip(rows, generated)):
            n = next((k for k, t in enumerate(tokens) if t in stops), len(tokens))
            text = tokenizer.decode(tokens[:n], skip_special_tokens=True).strip()
            mean = float(logps[row, :n].mean()) if n else None
            results[i] = Result(text, n, prompts[i][1], mean)
    return results


def stream_chat(
    model, tokenizer, messages: list[dict], settings: GenerationSettings
) -> Iterator[str]:
    """Text chunks of the model's reply to a chat, as they are generated. Generation runs in a
    thread; closing the iterator early (the user moved on) stops it after the next token."""
    import threading

    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    ids = _encode(tokenizer, text)
    budget = prompt_budget(model, settings)
    if len(ids) > budget:
        raise ValueError(
            f"The conversation is {len(ids)} tokens, over the {budget} this model can take with "
            f"{settings.max_new_tokens} new tokens: start a new chat or clear older messages."
        )
    stop = threading.Event()

    class StopWhenClosed(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            return torch.full((input_ids.shape[0],), stop.is_set(), device=input_ids.device)

    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
    errors: list[BaseException] = []

    def run():
        try:
            with torch.inference_mode():
                model.generate(
                    input_ids=torch.tensor([ids], device=model.device),
                    attention_mask=torch.ones(1, len(ids), dtype=torch.long, device=model.device),
                    streamer=streamer,
                    stopping_criteria=StoppingCriteriaList([StopWhenClosed()]),
                    **generation_kwargs(model, tokenizer, settings),
                )
        except BaseException as e:  # re-raised in the caller's thread below
            errors.append(e)
            streamer.end()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield from streamer
    finally:
        stop.set()
        thread.join()
    if errors:
        raise errors[0]
