"""The training job: fine-tune a base model on a run folder's exported data with TRL's SFTTrainer.

    python -m engine train RUN_DIR

RUN_DIR holds config.json (a TrainConfig, engine/training/config.py), train.jsonl and
validation.jsonl (conversational prompt/completion records from engine/data/export.py). The loss
is on
the summary only. Documents too long for max_length are cut, never the summary
(engine/training/data.py). LoRA or full fine-tuning; bf16 where it is fast.

The run writes, through jobs.RunWriter:
- events.jsonl, one object per line with "time" and "type":
  start      n_train, n_validation, n_eval, documents_cut, summaries_too_long (examples left
             out: their summary alone exceeds max_length), total_steps, method,
             trainable_params, total_params, device, bf16, warnings
  progress   phase ("loading model", "baseline validation loss", "validation summaries",
             "training", …), done, total, step, total_steps, and for training epoch,
             elapsed_s, eta_s
  train      step, epoch, loss, learning_rate, grad_norm, tokens_seen, tokens_per_s
  eval       step, epoch, eval_loss, train_loss (mean since the last eval), rouge_l, seconds,
             samples [{id, summary}]   (step 0 is the base model, before training)
  overfitting  step, message, eval_losses, train_losses   (once; also in status.json)
  cancel_requested / early_stopped   step (early_stopped also best_step)
  finished   state, metrics
- status.json: "running", then "succeeded" or "cancelled" with `metrics` (best_eval_loss,
  best_step, base_eval_loss, best_rouge_l, base_rouge_l, steps, train_tokens_per_s,
  train_seconds, final_dir) or "failed" with the reason (engine/jobs/workers.py); the
  traceback of a bug goes to worker.log.
- final/: the adapter (LoRA) or the full weights, with the tokenizer, from the best checkpoint
  by validation loss (the last weights when there is no validation split). A cancelled run
  saves what it has there too.

It never opens the database.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from pathlib import Path

from engine.jobs.runfolder import RunWriter, read_json, write_json
from engine.jobs.workers import run_job, worker_main
from engine.training.config import (
    TrainConfig,
    lora_config,
    planned_steps,
    preflight,
    sft_config,
    use_bf16,
)
from engine.training.data import fit_examples, read_records, rouge_set, sample
from engine.training.eta import (
    PRIOR_RATES,
    RATES,
    TRAINING_ESTIMATES,
    Estimate,
    Eta,
    followup_seconds,
    training_plan,
)

PROCESS_STARTED = time.time()  # this worker's start, when the app did not record one


def base_reference(config: TrainConfig) -> str:
    """The base model's folder or Hub id; a ValueError when a named folder does not exist."""
    from engine.models.generation import resolve_model

    ref = resolve_model(config.base_model)
    if ref.startswith(("/", ".", "~")) and not Path(ref).expanduser().exists():
        raise ValueError(f"The base model folder {ref} does not exist: pick another base model.")
    return ref


def load_base(config: TrainConfig):
    """(model, tokenizer) of the base model, with a message that says what to fix."""
    import torch
    from transformers import AutoModelForCausalLM

    from engine.models.embedded import open_tokenizer

    ref = base_reference(config)
    # LoRA leaves the base frozen, so it can sit in bf16; full fine-tuning keeps fp32 weights.
    dtype = torch.bfloat16 if use_bf16(config) and config.method == "lora" else torch.float32
    try:
        tokenizer = open_tokenizer(ref)  # with a plain chat template when it has none
        model = AutoModelForCausalLM.from_pretrained(ref, dtype=dtype, **quantized(config))
    except OSError as e:
        raise ValueError(
            f"The base model {ref!r} could not be loaded: not a model folder, and not a Hugging "
            f"Face model id that can be downloaded ({e})."
        ) from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return prepare_quantized(model, config), tokenizer


def quantized(config: TrainConfig) -> dict:
    """from_pretrained's arguments for a QLoRA base: 4-bit NF4 weights (bitsandbytes) that
    compute in bf16, on this process's GPU; {} without quantization."""
    if config.quantization != "nf4":
        return {}
    import torch
    from transformers import BitsAndBytesConfig

    bnb = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_compute_dtype=torch.bfloat16,
        bnb_4bit_use_double_quant=True,
    )
    return dict(quantization_config=bnb, device_map={"": int(os.environ.get("LOCAL_RANK", 0))})


def prepare_quantized(model, config: TrainConfig):
    """peft's preparation of a 4-bit base for training (norms and embeddings in fp32, inputs
    that carry gradients); the model unchanged without quantization."""
    if config.quantization != "nf4":
        return model
    from peft import prepare_model_for_kbit_training

    return prepare_model_for_kbit_training(
        model, use_gradient_checkpointing=config.gradient_checkpointing
    )


def build_trainer(
    config: TrainConfig,
    run_dir: Path,
    train_records: list[dict],
    validation_records: list[dict],
    writer: RunWriter,
):
    """(SFTTrainer, RunCallback, facts for the start event) for a run folder."""
    from datasets import Dataset
    from transformers import EarlyStoppingCallback, set_seed
    from trl import SFTTrainer

    from engine.training.callbacks import RunCallback

    set_seed(config.seed)  # before the model exists: LoRA's initialisation is random
    model, tokenizer = load_base(config)
    train_records = sample(train_records, config.train_subset, config.seed)
    eval_records = sample(validation_records, config.eval_samples, config.seed)
    examples, documents_cut, summaries_too_long = fit_examples(tokenizer, train_records, config)
    if not examples:
        raise ValueError(
            f"No training example fits max_length {config.max_length}: the instruction and the "
            f"summary alone are longer in all {summaries_too_long}. Raise max_length."
        )
    eval_examples, _, _ = fit_examples(tokenizer, eval_records, config)
    callback = RunCallback(
        writer,
        rouge_set(tokenizer, eval_records, config),
        config.max_new_tokens,
        config.batch_size,
        last_eval_only=config.rouge_last_eval_only,
    )
    callback.eta = Eta(
        training_plan(
            planned_steps(config, len(examples)),
            config.eval_every_steps,
            math.ceil(len(eval_examples) / config.batch_size) if eval_examples else 0,
            len(callback.rouge_prompts),
            config.rouge_last_eval_only,
        ),
        TRAINING_ESTIMATES
        | {"training": Estimate(like=("validation loss", 3.0 * config.grad_accum))},
        prior=read_json(run_dir / PRIOR_RATES),  # the app's copy of a like run's RATES
    )
    callbacks = [callback]
    if eval_examples and config.early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(config.early_stopping_patience))
    trainer = SFTTrainer(
        model=model,
        args=sft_config(config, str(run_dir / "checkpoints"), bool(eval_examples)),
        train_dataset=Dataset.from_list(examples),
        eval_dataset=Dataset.from_list(eval_examples) if eval_examples else None,
        processing_class=tokenizer,
        peft_config=lora_config(config) if config.method == "lora" else None,
        callbacks=callbacks,
    )
    params = list(trainer.model.parameters())
    facts = dict(
        n_train=len(examples),
        n_validation=len(validation_records),
        n_eval=len(eval_examples),
        documents_cut=documents_cut,
        summaries_too_long=summaries_too_long,
        method=config.method,
        trainable_params=sum(p.numel() for p in params if p.requires_grad),
        total_params=sum(p.numel() for p in params),
        device=str(trainer.args.device),
        bf16=trainer.args.bf16,
    )
    if trainer.eval_dataset is not None:
        callback.n_eval_batches = math.ceil(
            len(trainer.eval_dataset) / trainer.args.per_device_eval_batch_size
        )
    return trainer, callback, facts


def run_training(run_dir: str | Path) -> str:
    """Train the run in `run_dir`; returns its final state (succeeded or cancelled)."""
    run_dir = Path(run_dir)
    writer = RunWriter(run_dir)
    writer.set_status("running", pid=os.getpid())
    config_path = run_dir / "config.json"
    if not config_path.exists():
        raise ValueError(f"{config_path} is missing: create the run folder from the app.")
    config = TrainConfig.from_json(config_path.read_text(encoding="utf-8"))
    train_records = read_records(run_dir / "train.jsonl")
    validation_records = read_records(run_dir / "validation.jsonl")
    warnings = preflight(config, len(train_records), len(validation_records))
    if not train_records:
        raise ValueError(warnings[0])
    from engine.training.memory import fit_to_gpu, memory_check

    base_reference(config)  # a missing folder says so, before anything reads its config
    config, fitted = fit_to_gpu(config)  # on a GPU: checkpointing, batch size, to fit its memory
    warnings += fitted
    too_big = memory_check(config)  # refuse before loading a model that cannot fit
    if too_big:
        raise ValueError(too_big)

    writer.progress("loading model", 0, 1)
    trainer, callback, facts = build_trainer(
        config, run_dir, train_records, validation_records, writer
    )
    followup = read_json(run_dir / "followup.json")  # the evaluations the app will start after
    if followup:
        # An evaluation worker starts and loads a model the way this one did.
        since = read_json(run_dir / "status.json", {}).get("started") or PROCESS_STARTED
        overhead = time.time() - since
        callback.followup_s = lambda eta: followup_seconds(followup, eta, overhead)
    total_steps = planned_steps(config, len(trainer.train_dataset))  # rows, after any packing
    writer.event("start", **facts, total_steps=total_steps, warnings=warnings)
    print(f"training: {json.dumps(facts)}", *warnings, sep="\n", flush=True)
    if writer.cancel_requested():  # asked while the model was loading: stop before any work
        writer.event("finished", state="cancelled", metrics={})
        writer.set_status("cancelled", "Cancelled before the first step; nothing was trained.")
        return "cancelled"
    trainer.train()

    state = trainer.state
    best_step = checkpoint_step(state.best_model_checkpoint)
    if not callback.cancelled and state.global_step < state.max_steps:  # only early stopping
        writer.event("early_stopped", step=state.global_step, best_step=best_step)
    final = run_dir / "final"
    trainer.save_model(str(final))  # best checkpoint (load_best_model_at_end) + tokenizer
    shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)  # final/ holds the best

    metrics = summary_metrics(callback, state, best_step, final)
    result = "cancelled" if callback.cancelled else "succeeded"
    if callback.eta is not None and result == "succeeded":
        write_json(run_dir / RATES, callback.eta.measured(time.time()))
    writer.event("finished", state=result, metrics=metrics)
    reason = (
        f"Cancelled at step {state.global_step}; kept the best weights so far."
        if callback.cancelled
        else None
    )
    writer.set_status(result, reason, metrics=metrics)
    return result


def checkpoint_step(checkpoint: str | None) -> int | None:
    return int(Path(checkpoint).name.split("-")[-1]) if checkpoint else None  # checkpoint-24


def summary_metrics(callback, state, best_step: int | None, final: Path) -> dict:
    history = callback.history
    base = history[0] if history and history[0]["step"] == 0 else None
    at_best = next((h for h in history if h["step"] == best_step), None)
    rouges = [h["rouge_l"] for h in history if h["rouge_l"] is not None and h["step"] > 0]
    return {
        "best_eval_loss": state.best_metric,
        "best_step": best_step,
        "rouge_l_at_best": at_best["rouge_l"] if at_best else None,
        "best_rouge_l": max(rouges) if rouges else None,
        "base_eval_loss": base["eval_loss"] if base else None,
        "base_rouge_l": base["rouge_l"] if base else None,
        "steps": state.global_step,
        "train_tokens": state.num_input_tokens_seen,
        "train_tokens_per_s": callback.tokens_per_s(state),
        "train_seconds": round(callback.train_seconds, 1),
        "final_dir": str(final),
        "overfitting": callback.alarm is not None,
    }


def train(run_dir: str | Path) -> str:
    """Run the job and record how it ended, whatever happens; returns the final state."""
    return run_job(
        run_dir,
        lambda: run_training(run_dir),
        "training",
        out_of_memory="lower batch_size or max_length",
        on_failure=lambda writer, reason: writer.event("finished", state="failed", reason=reason),
    )


def main(argv: list[str]) -> int:
    return worker_main(
        argv,
        "python -m engine train",
        "Fine-tune a model for a run folder.",
        lambda args: train(args.run_dir),
    )
