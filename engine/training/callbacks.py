"""What a training run reports while it runs: a transformers TrainerCallback that writes progress,
losses, validation ROUGE-L and alarms to the run folder through jobs.RunWriter, and stops the
trainer when the app asks it to cancel. Used by engine/training/worker.py; see its docstring for
the events.
"""

from __future__ import annotations

import time

from transformers import TrainerCallback

from engine.jobs.runfolder import RunWriter

PROGRESS_EVERY_S = 2.0  # at most one progress event per this many seconds (plus the last step)


def overfitting(history: list[dict]) -> bool:
    """Validation loss rose at each of the last two evaluations while the training loss fell."""
    if len(history) < 3:
        return False
    a, b, c = history[-3:]
    if None in (a["train_loss"], c["train_loss"]):
        return False
    return a["eval_loss"] < b["eval_loss"] < c["eval_loss"] and c["train_loss"] < a["train_loss"]


def generate_summaries(
    model,
    tokenizer,
    prompts: list[list[int]],
    max_new_tokens: int,
    batch_size: int,
    on_batch=None,
) -> list[str]:
    """Greedy summaries for tokenized prompts, in order: longest first in left-padded batches."""
    import torch

    from engine.models.generation import GenerationSettings, generation_kwargs

    kwargs = generation_kwargs(model, tokenizer, GenerationSettings(max_new_tokens=max_new_tokens))
    stops = set(kwargs["eos_token_id"])
    pad = tokenizer.pad_token_id
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    texts: list[str] = [""] * len(prompts)
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            width = max(len(prompts[i]) for i in rows)
            ids = torch.tensor([[pad] * (width - len(prompts[i])) + prompts[i] for i in rows])
            mask = torch.tensor(
                [[0] * (width - len(prompts[i])) + [1] * len(prompts[i]) for i in rows]
            )
            device = next(model.parameters()).device
            with torch.inference_mode():
                out = model.generate(
                    input_ids=ids.to(device),
                    attention_mask=mask.to(device),
                    use_cache=True,
                    **kwargs,
                )
            for i, tokens in zip(rows, out[:, width:].tolist()):
                n = next((k for k, t in enumerate(tokens) if t in stops), len(tokens))
                texts[i] = tokenizer.decode(tokens[:n], skip_special_tokens=True).strip()
            if on_batch:
                on_batch(min(start + batch_size, len(order)))
    finally:
        model.train(was_training)
    return texts


class RunCallback(TrainerCallback):
    """Reports a run to its folder. `rouge_set` is (ids, tokenized prompts, reference summaries)
    of the validation examples summarized at each evaluation."""

    def __init__(
        self,
        writer: RunWriter,
        rouge_set: tuple[list, list, list],
        max_new_tokens: int,
        batch_size: int,
        last_eval_only: bool = False,
        eta=None,
        followup_s=None,
    ):
        self.writer = writer
        self.last_eval_only = last_eval_only  # summaries at the final evaluation only
        self.eta = eta  # engine.training.eta.Eta over the run's plan, or None
        self.followup_s = followup_s  # f(eta) -> seconds of the evaluations after the run
        self._kind = None  # the plan phase in progress
        self.rouge_ids, self.rouge_prompts, self.rouge_refs = rouge_set
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size
        self.history: list[dict] = []  # one row per evaluation
        self.recent_losses: list[float] = []  # training losses logged since the last evaluation
        self.train_seconds = 0.0  # time inside optimizer steps (no evaluation, no saving)
        self.cancelled = False
        self.alarm: dict | None = None
        self._started = self._step_started = self._last_progress = 0.0
        self.n_eval_batches = 0  # validation batches per evaluation (set by the trainer builder)
        self._eval_batches = 0
        self._baseline = True  # until the first optimizer step
        self._boundary = 0.0  # when the last phase (a step, a validation) ended
        self._chunk_start = 0  # the step the current training chunk started after

    def on_train_begin(self, args, state, control, **kwargs):
        self._started = self._boundary = time.time()

    def _enter(self, kind: str, since: float):
        """The plan's next `kind` phase began at `since` (the end of the one before)."""
        if self.eta is not None and self._kind != kind:
            self._kind = kind
            try:
                self.eta.begin(kind, since)
            except ValueError:  # off the plan (a resumed or unusual schedule): no ETA
                self.eta = None

    def _etas(self, done: int, now: float) -> dict:
        """eta_s (this run) and loop_eta_s (until Compare is ready) for a progress event."""
        left = self.eta.update(done, now) if self.eta is not None else None
        if left is None:
            return {"eta_s": None}
        after = self.followup_s(self.eta) if self.followup_s else None
        return {"eta_s": left} | ({} if after is None else {"loop_eta_s": round(left + after, 1)})

    def on_prediction_step(self, args, state, control, eval_dataloader=None, **kwargs):
        """Validation loss batch by batch, so a long validation (the base model's, before the
        first step) shows its phase and progress instead of sitting at step 0."""
        self._eval_batches += 1
        self._enter("validation loss", self._boundary)
        now = time.time()
        total = self.n_eval_batches or self._eval_batches
        etas = self._etas(min(self._eval_batches, total), now)  # every batch counts for the rate
        if now - self._last_progress < PROGRESS_EVERY_S:
            return
        self._last_progress = now
        self.writer.progress(
            self._phase("validation loss"),
            min(self._eval_batches, total),
            total,
            step=state.global_step,
            total_steps=state.max_steps,
            **etas,
        )
        if self.writer.cancel_requested():
            self.cancelled = True
            control.should_training_stop = True

    def _phase(self, what: str) -> str:
        return f"baseline {what}" if self._baseline else what

    def on_step_begin(self, args, state, control, **kwargs):
        self._step_started = time.perf_counter()
        if self._kind != "training":
            self._chunk_start = state.global_step
            self._enter("training", self._boundary)

    def on_step_end(self, args, state, control, **kwargs):
        self._baseline = False
        self.train_seconds += time.perf_counter() - self._step_started
        now = time.time()
        last = state.global_step >= state.max_steps
        if now - self._last_progress >= PROGRESS_EVERY_S or last or state.global_step == 1:
            self._last_progress = now
            elapsed = now - self._started
            etas = self._etas(state.global_step - self._chunk_start, now)
            self.writer.progress(
                "training",
                state.global_step,
                state.max_steps,
                step=state.global_step,
                total_steps=state.max_steps,
                epoch=round(state.epoch or 0.0, 3),
                elapsed_s=round(elapsed, 1),
                **etas,
            )
        else:
            self._etas(state.global_step - self._chunk_start, now)  # the rate, without an event
        self._boundary = time.time()
        if self.writer.cancel_requested():
            self.cancelled = True
            control.should_training_stop = True
            self.writer.event("cancel_requested", step=state.global_step)
        return control

    def tokens_per_s(self, state) -> float | None:
        if not self.train_seconds:
            return None
        return round(state.num_input_tokens_seen / self.train_seconds, 1)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.recent_losses.append(logs["loss"])
            self.writer.event(
                "train",
                step=state.global_step,
                epoch=round(state.epoch or 0.0, 3),
                loss=logs["loss"],
                learning_rate=logs.get("learning_rate"),
                grad_norm=logs.get("grad_norm"),
                tokens_seen=state.num_input_tokens_seen,
                tokens_per_s=self.tokens_per_s(state),
            )

    def on_evaluate(
        self, args, state, control, metrics=None, model=None, processing_class=None, **kwargs
    ):
        started = time.perf_counter()
        self._eval_batches = 0
        rouge_l, samples = None, []
        summarize = not self.last_eval_only or state.global_step >= state.max_steps
        if self.rouge_prompts and summarize and not self.cancelled:
            from engine.metrics import rouge

            total = len(self.rouge_prompts)
            phase = self._phase("validation summaries")
            now = time.time()
            self._enter("validation summaries", now)
            self.writer.progress(phase, 0, total, step=state.global_step, **self._etas(0, now))
            texts = generate_summaries(
                model,
                processing_class,
                self.rouge_prompts,
                self.max_new_tokens,
                self.batch_size,
                on_batch=lambda done: self.writer.progress(
                    phase, done, total, step=state.global_step, **self._etas(done, time.time())
                ),
            )
            rouge_l = round(float(rouge(texts, self.rouge_refs)["rougeL"].mean()), 4)
            samples = [{"id": i, "summary": t} for i, t in zip(self.rouge_ids, texts)]
        train_loss = (
            sum(self.recent_losses) / len(self.recent_losses) if self.recent_losses else None
        )
        self.recent_losses = []
        row = {
            "step": state.global_step,
            "eval_loss": metrics["eval_loss"],
            "train_loss": train_loss,
            "rouge_l": rouge_l,
        }
        self.history.append(row)
        self.writer.event(
            "eval",
            **row,
            epoch=round(state.epoch or 0.0, 3),
            samples=samples,
            seconds=round(metrics.get("eval_runtime", 0) + time.perf_counter() - started, 1),
        )
        if self.alarm is None and overfitting(self.history):
            self.alarm = {
                "step": state.global_step,
                "message": "Validation loss rose at the last two evaluations while training "
                "loss fell: the model is memorising its training examples. Fewer steps, a "
                "lower learning rate or more data will help; the best checkpoint is kept.",
                "eval_losses": [r["eval_loss"] for r in self.history[-3:]],
                "train_losses": [r["train_loss"] for r in self.history[-3:]],
            }
            self.writer.event("overfitting", **self.alarm)
            self.writer.set_status("running", overfitting=self.alarm)
        self._boundary = time.time()  # the next training chunk starts after this validation
