"""Will a training run fit? A rough peak-memory estimate from the base model's config, compared
with the GPU's free memory (or the machine's available RAM on CPU), checked before the model loads.

    from engine.training.memory import memory_check
    problem = memory_check(config)  # None, or "needs about 38 GB, this GPU has 24 GB free: ..."

The estimate is deliberately coarse (within ~30%): weights in the training dtype, gradients and
two fp32 AdamW moments for the trainable parameters (all of them for full fine-tuning, ~1% for
LoRA), and activations of about batch x seq x hidden x layers x ACTIVATION_FACTOR values (far
fewer with gradient checkpointing). It refuses only runs that clearly cannot fit: a run needing
more than the memory there is, with MARGIN of head room for the allocator and the runtime.
"""

from __future__ import annotations

from dataclasses import dataclass

GB = 1024**3
ACTIVATION_FACTOR = 16  # saved tensors per layer per token, in hidden-size units (attention+MLP)
LORA_TRAINABLE_SHARE = 0.01  # LoRA adapters at r=16 on all linear layers: ~0.5-2% of weights
MARGIN = 1.1  # allocator fragmentation, CUDA context, tokenizer and data


@dataclass
class MemoryEstimate:
    weights: float  # bytes
    grads_and_optimizer: float
    activations: float

    @property
    def total(self) -> float:
        return (self.weights + self.grads_and_optimizer + self.activations) * MARGIN


def estimate(
    n_params: int,
    hidden_size: int,
    n_layers: int,
    method: str,
    batch_size: int,
    max_length: int,
    dtype_bytes: int = 4,
    gradient_checkpointing: bool = False,
) -> MemoryEstimate:
    """Peak training memory for a model of n_params parameters; method "lora" or "full"."""
    weights = n_params * dtype_bytes
    trainable = n_params if method == "full" else n_params * LORA_TRAINABLE_SHARE
    # A gradient in the training dtype, plus fp32 AdamW exp_avg and exp_avg_sq (and an fp32
    # master copy when training in half precision).
    master = 4 if dtype_bytes < 4 else 0
    grads_and_optimizer = trainable * (dtype_bytes + 8 + master)
    factor = 2 if gradient_checkpointing else ACTIVATION_FACTOR
    activations = batch_size * max_length * hidden_size * n_layers * factor * dtype_bytes
    return MemoryEstimate(weights, grads_and_optimizer, activations)


def available() -> tuple[float, str]:
    """(bytes free, where): the current GPU's free memory, else the machine's available RAM."""
    import torch

    if torch.cuda.is_available():
        free, _ = torch.cuda.mem_get_info()
        return float(free), "this GPU has"
    try:
        for line in open("/proc/meminfo", encoding="utf-8"):
            if line.startswith("MemAvailable:"):
                return float(line.split()[1]) * 1024, "this machine has"
    except OSError:
        pass
    import os

    return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")), "this machine has"


def model_shape(base_model: str) -> tuple[int, int, int]:
    """(parameters, hidden size, layers) from the model's config alone, without its weights."""
    from transformers import AutoConfig

    from engine.models.generation import resolve_model

    cfg = AutoConfig.from_pretrained(resolve_model(base_model))
    cfg = getattr(cfg, "text_config", None) or cfg
    hidden, layers = cfg.hidden_size, cfg.num_hidden_layers
    inter = getattr(cfg, "intermediate_size", None) or 4 * hidden
    heads = cfg.num_attention_heads
    head_dim = getattr(cfg, "head_dim", None) or hidden // heads
    kv = getattr(cfg, "num_key_value_heads", None) or heads
    attention = hidden * head_dim * (2 * heads + 2 * kv)
    per_layer = attention + 3 * hidden * inter
    embeddings = cfg.vocab_size * hidden * (1 if getattr(cfg, "tie_word_embeddings", True) else 2)
    return layers * per_layer + embeddings, hidden, layers


def memory_check(config, shape: tuple[int, int, int] | None = None) -> str | None:
    """None when the run should fit; else a message saying how much it needs and what to try."""
    from engine.training.config import use_bf16

    n_params, hidden, layers = shape or model_shape(config.base_model)
    need = estimate(
        n_params,
        hidden,
        layers,
        config.method,
        config.batch_size,
        config.max_length,
        dtype_bytes=2 if use_bf16(config) else 4,
        gradient_checkpointing=config.gradient_checkpointing,
    ).total
    free, where = available()
    if need <= free:
        return None
    advice = (
        "use LoRA, a smaller batch or gradient checkpointing"
        if config.method == "full"
        else "lower the batch size or max_length, or turn on gradient checkpointing"
    )
    return (
        f"This run needs about {need / GB:.1f} GB, {where} {free / GB:.1f} GB free: {advice} "
        "(or a smaller base model)."
    )
