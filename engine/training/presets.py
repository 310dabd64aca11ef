"""Presets for bigger base models: LoRA (the base frozen in bf16) and QLoRA (the base in 4-bit
NF4, bitsandbytes, GPU only) for 0.5B, 1.5B, 3B and 7-8B class models (Qwen2.5-0.5B/1.5B/3B/7B,
Llama-3.2-3B, Llama-3.1-8B, Mistral-7B …). engine/training/config.py adds them to PRESETS, so the
Train page's picker, `python -m engine sweep --preset` and the bench scripts offer them.

    config = TrainConfig.from_dict(PRESETS["qlora-7b"] | {"base_model": "Qwen/Qwen2.5-7B-Instruct"})

Sized for one GPU with 2048-token examples, by engine/training/memory.py's estimate for
Qwen2.5 0.5B/1.5B/3B/7B and Llama-3-8B: the LoRA presets need about 15, 13, 17 and 28 GB, the
QLoRA ones about 9, 11, 13 and 20 GB (a 24 GB GPU for 7-8B). Below 3B the logits of a 150k-token
vocabulary, not the weights, fill most of it, so QLoRA saves little there. On a smaller GPU the
app and the worker turn on gradient checkpointing and trade batch size for gradient
accumulation until the estimate fits (memory.fit_to_gpu). Bigger models take a smaller LoRA
learning rate; QLoRA keeps the QLoRA paper's 2e-4, with rank 32 from 3B up.
"""

from __future__ import annotations

COMMON = dict(
    method="lora",
    lr_scheduler="cosine",
    warmup_ratio=0.03,
    epochs=2,
    max_length=2048,
    lora_dropout=0.05,
    eval_every_steps=50,
    eval_samples=200,
    rouge_eval_samples=32,
    max_new_tokens=256,
    early_stopping_patience=3,
)

# name: learning rate, LoRA rank (alpha = 2 x rank), batch size, gradient accumulation,
# gradient checkpointing. Every preset's effective batch is 16.
SIZES = {
    "lora-0.5b": (2e-4, 16, 4, 4, False),
    "lora-1.5b": (2e-4, 16, 4, 4, True),
    "lora-3b": (1.5e-4, 16, 4, 4, True),
    "lora-7b": (1e-4, 16, 4, 4, True),
    "qlora-0.5b": (2e-4, 16, 4, 4, True),
    "qlora-1.5b": (2e-4, 16, 4, 4, True),
    "qlora-3b": (2e-4, 32, 4, 4, True),
    "qlora-7b": (2e-4, 32, 4, 4, True),
}

BIGGER_MODELS: dict[str, dict] = {
    name: COMMON
    | dict(
        learning_rate=lr,
        lora_r=rank,
        lora_alpha=2 * rank,
        batch_size=batch,
        grad_accum=accum,
        gradient_checkpointing=checkpointing,
        quantization="nf4" if name.startswith("qlora") else None,
    )
    for name, (lr, rank, batch, accum, checkpointing) in SIZES.items()
}
