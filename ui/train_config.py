"""The training settings form: a preset, and every hyperparameter under an "advanced" fold."""

from __future__ import annotations

import streamlit as st

from engine.training.config import PRESETS, SCHEDULERS, TrainConfig

# The keys of the settings' widgets under "Advanced" (train_ + each of these).
SETTING_KEYS = [
    f"train_{name}"
    for name in (
        "method lr sched warmup epochs max_steps batch accum max_len wd r alpha dropout targets "
        "eval_every patience subset seed packing checkpointing qlora rouge_last report_to"
    ).split()
]


def installed_trackers() -> list[str]:
    from importlib.util import find_spec

    modules = {"tensorboard": "tensorboard", "mlflow": "mlflow", "wandb": "wandb"}
    return [name for name, module in modules.items() if find_spec(module)]


def forget_settings():
    """A widget with a key keeps its value when its default changes: on a new preset, let every
    setting start again from the preset's value."""
    for key in SETTING_KEYS:
        st.session_state.pop(key, None)


def config_ui(default: TrainConfig) -> TrainConfig | None:
    """Returns the chosen TrainConfig, or None (with the reason shown) when a value is invalid."""
    preset = st.selectbox(
        "Preset", ["(last good settings)", *PRESETS], key="train_preset", on_change=forget_settings
    )
    base = (
        default
        if preset not in PRESETS
        else TrainConfig.from_dict(default.to_dict() | PRESETS[preset])
    )
    v = base.to_dict()
    with st.expander("Advanced"):
        c = st.columns(4)
        v["method"] = c[0].selectbox(
            "Method", ["lora", "full"], ["lora", "full"].index(v["method"]), key="train_method"
        )
        v["learning_rate"] = c[1].number_input(
            "Learning rate", 1e-7, 1.0, v["learning_rate"], format="%.2e", key="train_lr"
        )
        v["lr_scheduler"] = c[2].selectbox(
            "Scheduler", SCHEDULERS, SCHEDULERS.index(v["lr_scheduler"]), key="train_sched"
        )
        v["warmup_ratio"] = c[3].number_input(
            "Warm-up ratio", 0.0, 0.9, v["warmup_ratio"], key="train_warmup"
        )
        v["epochs"] = c[0].number_input(
            "Epochs", 0.1, 100.0, float(v["epochs"]), key="train_epochs"
        )
        v["max_steps"] = c[1].number_input(
            "Max steps (-1: by epochs)", -1, 10**6, v["max_steps"], key="train_max_steps"
        )
        v["batch_size"] = c[2].number_input(
            "Batch size", 1, 512, v["batch_size"], key="train_batch"
        )
        v["grad_accum"] = c[3].number_input(
            "Gradient accumulation", 1, 512, v["grad_accum"], key="train_accum"
        )
        v["max_length"] = c[0].number_input(
            "Max length (tokens)", 128, 32768, v["max_length"], key="train_max_len"
        )
        v["weight_decay"] = c[1].number_input(
            "Weight decay", 0.0, 1.0, v["weight_decay"], key="train_wd"
        )
        v["lora_r"] = c[2].number_input("LoRA rank", 1, 512, v["lora_r"], key="train_r")
        v["lora_alpha"] = c[3].number_input(
            "LoRA alpha", 1, 1024, v["lora_alpha"], key="train_alpha"
        )
        v["lora_dropout"] = c[0].number_input(
            "LoRA dropout", 0.0, 0.9, v["lora_dropout"], key="train_dropout"
        )
        targets = v["lora_target_modules"]
        v["lora_target_modules"] = c[1].text_input(
            "LoRA target modules",
            targets if isinstance(targets, str) else ",".join(targets),
            key="train_targets",
        )
        v["eval_every_steps"] = c[2].number_input(
            "Evaluate every N steps", 1, 10**5, v["eval_every_steps"], key="train_eval_every"
        )
        v["early_stopping_patience"] = c[3].number_input(
            "Early-stopping patience (0: off)",
            0,
            100,
            v["early_stopping_patience"],
            key="train_patience",
        )
        v["train_subset"] = (
            c[0].number_input(
                "Training subset (0: all)", 0, 10**7, v["train_subset"] or 0, key="train_subset"
            )
            or None
        )
        v["seed"] = c[1].number_input("Seed", 0, 2**31, v["seed"], key="train_seed")
        v["packing"] = c[2].checkbox(
            "Packing (padding-free)",
            v["packing"],
            key="train_packing",
            help="Pays off on GPUs with FlashAttention; no gain on a CPU.",
        )
        v["gradient_checkpointing"] = c[3].checkbox(
            "Gradient checkpointing",
            v["gradient_checkpointing"],
            key="train_checkpointing",
            help="Less memory, about 30% slower.",
        )
        v["rouge_last_eval_only"] = c[0].checkbox(
            "Validation summaries at the last evaluation only",
            v["rouge_last_eval_only"],
            key="train_rouge_last",
            help="Saves minutes on a CPU; the test-split evaluation after training scores them.",
        )
        qlora = c[1].checkbox(
            "QLoRA (4-bit base)",
            v["quantization"] == "nf4",
            key="train_qlora",
            help="Loads the base in 4-bit NF4 (bitsandbytes): LoRA on a CUDA GPU only.",
        )
        v["quantization"] = "nf4" if qlora else None
        trackers = installed_trackers()
        v["report_to"] = st.multiselect(
            "Experiment trackers (installed ones)",
            trackers,
            [t for t in v["report_to"] if t in trackers],
            key="train_report_to",
            help="Runs always write their own events; these get a copy.",
        )
    if "," in v["lora_target_modules"]:
        v["lora_target_modules"] = [t.strip() for t in v["lora_target_modules"].split(",")]
    try:
        return TrainConfig.from_dict(v)
    except ValueError as e:
        st.error(str(e))
        return None
