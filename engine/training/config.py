"""Training settings: a run folder's config.json as one dataclass, presets, pre-flight warnings,
and the one mapping from our settings to TRL's SFTConfig.

    from engine.training.config import PRESETS, TrainConfig, preflight
    config = TrainConfig.from_dict(PRESETS["Quick (CPU demo)"] | {"base_model": folder})
    warnings = preflight(config, n_train=400, n_validation=50)
    (run_dir / "config.json").write_text(config.to_json())   # then: python -m engine train RUN_DIR

The UI and the CLI build the same TrainConfig; the worker (engine/training/worker.py) reads it back.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields

from engine.errors import TuneloopError
from engine.models.embedded import DEFAULT_MODEL
from engine.models.prompts import DEFAULT_INSTRUCTION
from engine.training.presets import BIGGER_MODELS

SCHEDULERS = ("linear", "cosine", "constant", "constant_with_warmup")


@dataclass
class TrainConfig:
    base_model: str = DEFAULT_MODEL  # model folder, Hub id, or the embedded default's short name
    instruction: str = DEFAULT_INSTRUCTION  # the prompt instruction the data was exported with
    prompt_version: int | None = None  # prompt_versions.version of that instruction
    dataset_version: int | None = None  # frozen dataset version the run's JSONL files came from
    method: str = "lora"  # "lora": train small adapter matrices; "full": update every weight
    learning_rate: float = 2e-4  # peak learning rate (LoRA wants ~1e-4..5e-4, full ~1e-5..5e-5)
    lr_scheduler: str = "cosine"  # how the rate decays after warm-up: one of SCHEDULERS
    warmup_ratio: float = 0.05  # share of the steps spent ramping the rate up from 0
    epochs: float = 1.0  # passes over the training examples (ignored when max_steps is set)
    max_steps: int = -1  # optimizer steps to run; -1 = as many as `epochs` take
    batch_size: int = 4  # examples per forward pass; lower it if memory runs out
    grad_accum: int = 1  # forward passes per optimizer step (effective batch = batch_size * this)
    max_length: int = 1024  # tokens per example; documents are cut to fit, summaries kept whole
    weight_decay: float = 0.0  # AdamW weight decay
    lora_r: int = 16  # LoRA rank: capacity of the adapter
    lora_alpha: int = 32  # LoRA scaling numerator (the update is scaled by alpha / r)
    lora_dropout: float = 0.05  # dropout on the adapter's input
    lora_target_modules: str | list[str] = "all-linear"  # layers that get adapters
    eval_every_steps: int = 50  # validation loss (and ROUGE-L) every this many steps
    eval_samples: int | None = None  # cap on validation examples for the loss; None = all
    rouge_eval_samples: int = 16  # validation examples summarized for ROUGE-L at each eval; 0 = off
    # Summarize them at the last evaluation only (not the base model's, not the rounds between):
    # on a CPU each round costs as much as a few training steps, and the test-split evaluation
    # that follows training measures the summaries anyway, with confidence intervals.
    rouge_last_eval_only: bool = False
    max_new_tokens: int = 128  # cap on each generated summary during evaluation
    early_stopping_patience: int = 3  # stop after this many evals without a better loss; 0 = off
    seed: int = 42  # fixes data order, subsets, adapter initialisation and dropout
    train_subset: int | None = None  # cap on training examples (a seeded sample); None = all
    packing: bool = False  # pack examples into rows, padding-free: pays off with FlashAttention
    gradient_checkpointing: bool = False  # recompute activations: less memory, ~30% slower
    bf16: str | bool = "auto"  # bfloat16 mixed precision; "auto" = on where it is fast (use_bf16)
    quantization: str | None = None  # "nf4": load the base in 4-bit NF4 with bitsandbytes (QLoRA)
    report_to: list[str] = field(default_factory=list)  # e.g. ["tensorboard"]; [] = files only

    def __post_init__(self):
        checks = [
            (str(self.base_model).strip(), "base_model is empty: name a model folder or Hub id."),
            (self.instruction.strip(), "The instruction is empty: say what the model should do."),
            (self.method in ("lora", "full"), "method must be 'lora' or 'full'."),
            (self.learning_rate > 0, "learning_rate must be above 0."),
            (self.lr_scheduler in SCHEDULERS, f"lr_scheduler must be one of {SCHEDULERS}."),
            (0 <= self.warmup_ratio < 1, "warmup_ratio must be in [0, 1)."),
            (self.epochs > 0, "epochs must be above 0."),
            (self.max_steps == -1 or self.max_steps >= 1, "max_steps must be -1 or at least 1."),
            (self.batch_size >= 1, "batch_size must be at least 1."),
            (self.grad_accum >= 1, "grad_accum must be at least 1."),
            (self.max_length >= 128, "max_length must be at least 128 tokens."),
            (self.weight_decay >= 0, "weight_decay must be 0 or more."),
            (self.lora_r >= 1 and self.lora_alpha > 0, "lora_r and lora_alpha must be positive."),
            (0 <= self.lora_dropout < 1, "lora_dropout must be in [0, 1)."),
            (self.lora_target_modules, "lora_target_modules is empty: use 'all-linear'."),
            (self.eval_every_steps >= 1, "eval_every_steps must be at least 1."),
            (
                self.eval_samples is None or self.eval_samples >= 1,
                "eval_samples must be 1+ or empty.",
            ),
            (self.rouge_eval_samples >= 0, "rouge_eval_samples must be 0 (off) or more."),
            (
                1 <= self.max_new_tokens <= self.max_length // 2,
                "max_new_tokens must be between 1 and half of max_length.",
            ),
            (self.early_stopping_patience >= 0, "early_stopping_patience must be 0 (off) or more."),
            (
                self.train_subset is None or self.train_subset >= 1,
                "train_subset must be 1+ or empty.",
            ),
            (self.bf16 in ("auto", True, False), "bf16 must be 'auto', true or false."),
            (isinstance(self.report_to, list), "report_to must be a list, e.g. ['tensorboard']."),
            (self.quantization in (None, "nf4"), "quantization must be empty or 'nf4' (QLoRA)."),
            (
                self.quantization is None or self.method == "lora",
                "quantization 'nf4' (QLoRA) trains LoRA adapters: set method to 'lora'.",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise TuneloopError(message)

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise TuneloopError(f"Unknown training settings: {', '.join(sorted(unknown))}.")
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> TrainConfig:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise TuneloopError(f"The training config is not valid JSON: {e}") from None
        return cls.from_dict(data)


PRESETS: dict[str, dict] = {
    # Finishes in a few minutes on 2 CPU cores with the 135M default model.
    "Quick (CPU demo)": dict(
        method="lora",
        learning_rate=3e-4,
        lr_scheduler="cosine",
        warmup_ratio=0.1,
        max_steps=24,
        batch_size=2,
        grad_accum=1,
        max_length=512,
        lora_r=8,
        lora_alpha=16,
        eval_every_steps=8,
        eval_samples=8,
        # Summaries of 2 validation examples (one batch), at the last round only: 4 rounds of 4
        # took 80 s of an 8-minute loop (bench/results/loop-cpu.txt).
        rouge_eval_samples=2,
        rouge_last_eval_only=True,
        max_new_tokens=64,
        early_stopping_patience=0,
        train_subset=48,
        quantization=None,  # a last good QLoRA setting does not leak into this preset
    ),
    # A real LoRA fine-tune: minutes on a GPU, hours on a CPU.
    "Standard": dict(
        method="lora",
        learning_rate=2e-4,
        lr_scheduler="cosine",
        warmup_ratio=0.05,
        epochs=2,
        batch_size=8,
        grad_accum=2,
        max_length=1024,
        lora_r=16,
        lora_alpha=32,
        eval_every_steps=50,
        eval_samples=200,
        rouge_eval_samples=32,
        max_new_tokens=192,
        early_stopping_patience=3,
        quantization=None,
    ),
    # Full fine-tuning with long contexts: needs a GPU.
    "Thorough": dict(
        method="full",
        learning_rate=2e-5,
        lr_scheduler="cosine",
        warmup_ratio=0.03,
        epochs=3,
        batch_size=8,
        grad_accum=4,
        max_length=2048,
        weight_decay=0.01,
        eval_every_steps=100,
        rouge_eval_samples=64,
        max_new_tokens=256,
        early_stopping_patience=3,
        gradient_checkpointing=True,
        quantization=None,
    ),
    **BIGGER_MODELS,  # "lora-0.5b" … "qlora-7b": engine/training/presets.py
}


def planned_steps(config: TrainConfig, n_train: int) -> int:
    """Optimizer steps the run will take on n_train examples (before packing)."""
    if config.max_steps > 0:
        return config.max_steps
    n = min(n_train, config.train_subset or n_train)
    per_epoch = max(1, math.ceil(math.ceil(n / config.batch_size) / config.grad_accum))
    return math.ceil(config.epochs * per_epoch)


def packing_support() -> str | None:
    """None when padding-free packing keeps examples apart here; else why it is turned off.
    TRL's bfd packing puts several examples in one row with no attention mask, only position ids
    restarting per example. FlashAttention 2 reads those as separate sequences; with the SDPA
    and eager attention the worker loads, the later examples attend to the earlier ones
    (tests/test_memory.py measures it), which would silently change the loss."""
    import importlib.util

    import torch

    if not torch.cuda.is_available():
        return "packing needs FlashAttention on a GPU; on this CPU it would mix examples"
    if importlib.util.find_spec("flash_attn") is None:
        return (
            "packing needs the flash-attn package; without it examples would attend to each other"
        )
    return None


def require_quantization_support(config: TrainConfig):
    """A TuneloopError, before anything loads, when a QLoRA run cannot load its base here:
    4-bit NF4 (bitsandbytes) needs a CUDA GPU and the bitsandbytes package."""
    import importlib.util

    import torch

    if config.quantization is None:
        return
    if not torch.cuda.is_available():
        raise TuneloopError(
            "QLoRA (quantization 'nf4') needs a CUDA GPU, and there is none here: pick a LoRA "
            "preset (or clear quantization) to train on this machine."
        )
    if importlib.util.find_spec("bitsandbytes") is None:
        raise TuneloopError(
            "QLoRA (quantization 'nf4') needs the bitsandbytes package: `pip install "
            "bitsandbytes`, or clear quantization to train in 16-bit LoRA."
        )


def liger_available() -> bool:
    """Liger kernels (fused cross-entropy, RMSNorm, RoPE) are used when installed, on a GPU."""
    import importlib.util

    import torch

    return torch.cuda.is_available() and importlib.util.find_spec("liger_kernel") is not None


def preflight(
    config: TrainConfig, n_train: int, n_validation: int, example_tokens: list[int] | None = None
) -> list[str]:
    """Warnings, for people, about settings that do not suit the data; [] when all is well.
    `example_tokens`: each training example's length in tokens, counted or estimated
    (engine/training/data.py `estimate_training_tokens`), to warn when many documents will be
    cut."""
    require_quantization_support(config)  # a QLoRA run that cannot load here is refused
    if n_train == 0:
        return ["The training split is empty: split some examples into train and export again."]
    warnings = []
    n = min(n_train, config.train_subset or n_train)
    batch = config.batch_size * config.grad_accum
    steps = planned_steps(config, n_train)
    if n_validation == 0:
        warnings.append(
            "The validation split is empty: no validation loss, ROUGE-L, best checkpoint or early "
            "stopping. Split some examples into validation."
        )
    if n < batch:
        warnings.append(
            f"{n} training examples are fewer than one effective batch ({config.batch_size} x "
            f"{config.grad_accum} = {batch}): lower the batch size or add data."
        )
    elif n_train < 50:
        warnings.append(f"Only {n_train} training examples: expect noisy results.")
    passes = steps * batch / n
    if config.max_steps > 0 and passes > 10:
        warnings.append(
            f"{steps} steps of {batch} go over the {n} examples about {passes:.0f} times: the "
            "model will memorise them. Lower max_steps or add data."
        )
    if n_validation and steps < config.eval_every_steps:
        warnings.append(
            f"Training ends after {steps} steps, before the first evaluation at step "
            f"{config.eval_every_steps}: lower eval_every_steps."
        )
    elif n_validation and config.early_stopping_patience:
        if steps // config.eval_every_steps <= config.early_stopping_patience:
            warnings.append(
                f"Only {steps // config.eval_every_steps} evaluations: early stopping (patience "
                f"{config.early_stopping_patience}) cannot fire. Evaluate more often."
            )
    if 0 < n_validation < config.rouge_eval_samples:
        warnings.append(
            f"ROUGE-L uses all {n_validation} validation examples, fewer than the "
            f"{config.rouge_eval_samples} asked for: the score will be noisy."
        )
    if config.packing and (why := packing_support()):
        warnings.append(f"Packing is turned off: {why}. Training runs padded instead.")
    lengths = sorted(example_tokens or [])
    n_cut = sum(t > config.max_length for t in lengths)
    if lengths and n_cut >= max(2, 0.1 * len(lengths)):  # a few long documents are normal
        keep_most = math.ceil(lengths[math.ceil(0.9 * len(lengths)) - 1] / 128) * 128
        warnings.append(
            f"About {n_cut} of {len(lengths)} training documents ({n_cut / len(lengths):.0%}) are "
            f"longer than max_length {config.max_length} tokens allows: each is cut to fit, so "
            f"the model learns from their beginnings only. A max_length of about {keep_most} "
            "keeps 90% of them whole (at more memory and time per step)."
        )
    return warnings


def use_bf16(config: TrainConfig) -> bool:
    """bf16 on request, or with "auto" where it is fast: GPUs that support it, and CPUs with
    AMX tiles (there bf16 autocast trains about 1.7x faster than fp32)."""
    import torch

    if config.bf16 != "auto":
        return bool(config.bf16)
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    amx = getattr(torch.cpu, "_is_amx_tile_supported", None)
    return bool(amx and amx())


def sft_config(config: TrainConfig, output_dir: str, has_validation: bool):
    """The one mapping from our settings to TRL's SFTConfig (everything else stays TRL's)."""
    import torch
    from trl import SFTConfig

    evaluate = "steps" if has_validation else "no"
    packing = config.packing and packing_support() is None  # preflight says when it is off
    return SFTConfig(
        output_dir=output_dir,
        learning_rate=config.learning_rate,
        lr_scheduler_type=config.lr_scheduler,
        warmup_steps=config.warmup_ratio,  # below 1 transformers 5 reads it as a ratio
        num_train_epochs=config.epochs,
        max_steps=config.max_steps,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum,
        weight_decay=config.weight_decay,
        max_length=config.max_length,
        # Best-fit-decreasing packing keeps each example whole and its completion mask, and runs
        # padding-free: position ids restart per example, so examples do not attend to each other.
        packing=packing,
        packing_strategy="bfd",
        eval_packing=False,  # the validation loss stays comparable between runs
        completion_only_loss=True,  # loss on the summary only, never on the document
        # Without packing, batches of similar lengths waste less compute on padding.
        train_sampling_strategy="random" if packing else "group_by_length",
        gradient_checkpointing=config.gradient_checkpointing,
        bf16=use_bf16(config),  # TRL's default (on) refuses to start on a CPU without use_cpu
        use_cpu=not torch.cuda.is_available(),
        seed=config.seed,
        data_seed=config.seed,
        eval_strategy=evaluate,
        eval_steps=config.eval_every_steps,
        eval_on_start=has_validation,  # the base model's loss and ROUGE-L, to compare with
        save_strategy=evaluate,
        save_steps=config.eval_every_steps,
        save_total_limit=2,  # the best and the latest
        save_only_model=True,  # no optimizer state: runs are not resumed
        load_best_model_at_end=has_validation,
        metric_for_best_model="eval_loss",
        greater_is_better=False,
        logging_steps=max(1, config.eval_every_steps // 5),
        logging_first_step=True,
        include_num_input_tokens_seen="non_padding",
        report_to=config.report_to or "none",
        disable_tqdm=True,  # progress goes to events.jsonl; the log gets one line per log call
        dataloader_pin_memory=torch.cuda.is_available(),
        use_liger_kernel=liger_available(),
    )


def lora_config(config: TrainConfig):
    from peft import LoraConfig

    return LoraConfig(
        task_type="CAUSAL_LM",
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=config.lora_target_modules,
        bias="none",
    )
