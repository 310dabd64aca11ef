"""Will a training run fit? A rough peak-memory estimate from the base model's config, compared
with the GPU's free memory (or the machine's available RAM on CPU), checked before the model loads.

    from engine.training.memory import fit_to_gpu, memory_check
    config, notes = fit_to_gpu(config)  # on a GPU: checkpointing on, smaller batches, if needed
    problem = memory_check(config)  # None, or "needs about 38 GB, this GPU has 24 GB free: ..."

The estimate is deliberately coarse (within ~30%): weights in the training dtype (or 4-bit NF4
for QLoRA: 0.5 bytes per linear weight plus its quantization constants, the embeddings in fp32),
gradients and two fp32 AdamW moments for the trainable parameters (all of them for full
fine-tuning, the adapters' own count for LoRA), activations of about batch x seq x hidden x
layers x ACTIVATION_FACTOR values (far fewer with gradient checkpointing) and the logits the loss
reads. It refuses only runs that clearly cannot fit: a run needing more than the memory there
is, with MARGIN of head room for the allocator and the runtime.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import NamedTuple

GB = 1024**3
ACTIVATION_FACTOR = 16  # saved tensors per layer per token, in hidden-size units (attention+MLP)
CHECKPOINTED_FACTOR = 2  # with gradient checkpointing: each layer's input, and one layer's worth
LORA_TRAINABLE_SHARE = 0.01  # LoRA adapters at r=16 on all linear layers: ~0.5-2% of weights
MARGIN = 1.1  # allocator fragmentation, CUDA context, tokenizer and data
# NF4 with double quantization (bitsandbytes): 4 bits a weight, one 8-bit absmax per block of 64
# weights, and one fp32 constant per 256 of those blocks: (4 + 8/64 + 32/(64*256)) / 8 bytes.
NF4_BYTES = (4 + 8 / 64 + 32 / (64 * 256)) / 8  # 0.515869140625


class ModelShape(NamedTuple):
    n_params: int
    hidden: int
    layers: int
    embedding_params: int = 0  # input and output embeddings: not quantized by QLoRA
    vocab: int = 0  # logits per token (0: not counted)
    lora_params_per_rank: int = 0  # adapter weights per unit of rank, all linear layers; 0: share


@dataclass
class MemoryEstimate:
    weights: float  # bytes
    grads_and_optimizer: float
    activations: float
    logits: float = 0.0  # the output logits and their fp32 copy for the loss

    @property
    def total(self) -> float:
        return (self.weights + self.grads_and_optimizer + self.activations + self.logits) * MARGIN


def estimate(
    n_params: int,
    hidden_size: int,
    n_layers: int,
    method: str,
    batch_size: int,
    max_length: int,
    dtype_bytes: int = 4,
    gradient_checkpointing: bool = False,
    quantization: str | None = None,
    embedding_params: int = 0,
    vocab: int = 0,
    lora_params: int | None = None,
) -> MemoryEstimate:
    """Peak training memory for a model of n_params parameters; method "lora" or "full".
    `quantization` "nf4": the linear weights in 4-bit and the embeddings (`embedding_params` of
    them) in fp32, as peft's prepare_model_for_kbit_training leaves them. `lora_params`: the
    adapters' parameter count (default: LORA_TRAINABLE_SHARE of the weights)."""
    if quantization == "nf4":
        weights = (n_params - embedding_params) * NF4_BYTES + embedding_params * 4
    else:
        weights = n_params * dtype_bytes
    if method == "full":
        trainable = n_params
    else:
        trainable = n_params * LORA_TRAINABLE_SHARE if lora_params is None else lora_params
    # A gradient in the training dtype, plus fp32 AdamW exp_avg and exp_avg_sq (and an fp32
    # master copy when training in half precision).
    master = 4 if dtype_bytes < 4 else 0
    grads_and_optimizer = trainable * (dtype_bytes + 8 + master)
    factor = CHECKPOINTED_FACTOR if gradient_checkpointing else ACTIVATION_FACTOR
    activations = batch_size * max_length * hidden_size * n_layers * factor * dtype_bytes
    logits = batch_size * max_length * vocab * (dtype_bytes + 4)
    return MemoryEstimate(weights, grads_and_optimizer, activations, logits)


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


def shape_of(cfg) -> ModelShape:
    """The shape of a transformers model config (e.g. LlamaConfig), without any weights."""
    cfg = getattr(cfg, "text_config", None) or cfg
    hidden, layers = cfg.hidden_size, cfg.num_hidden_layers
    inter = getattr(cfg, "intermediate_size", None) or 4 * hidden
    heads = cfg.num_attention_heads
    head_dim = getattr(cfg, "head_dim", None) or hidden // heads
    kv = getattr(cfg, "num_key_value_heads", None) or heads
    attention = hidden * head_dim * (2 * heads + 2 * kv)
    per_layer = attention + 3 * hidden * inter
    embeddings = cfg.vocab_size * hidden * (1 if getattr(cfg, "tie_word_embeddings", True) else 2)
    # LoRA on q, k, v, o, gate, up and down: r x (inputs + outputs) each.
    q, kv_out = heads * head_dim, kv * head_dim
    per_rank = (hidden + q) * 2 + (hidden + kv_out) * 2 + (hidden + inter) * 3
    n_params = layers * per_layer + embeddings
    return ModelShape(n_params, hidden, layers, embeddings, cfg.vocab_size, layers * per_rank)


def model_dims(base_model: str) -> ModelShape:
    """The shape of a base model from its config alone (a folder, a Hub id or a short name)."""
    from transformers import AutoConfig

    from engine.models.generation import resolve_model

    return shape_of(AutoConfig.from_pretrained(resolve_model(base_model)))


def model_shape(base_model: str) -> tuple[int, int, int]:
    """(parameters, hidden size, layers) from the model's config alone, without its weights."""
    return tuple(model_dims(base_model)[:3])


def needed(config, shape) -> float:
    """Bytes the run needs, by `estimate`, for a TrainConfig and a ModelShape (or 3-tuple)."""
    from engine.training.config import use_bf16

    shape = ModelShape(*shape)
    all_linear = config.lora_target_modules == "all-linear"
    lora_params = config.lora_r * shape.lora_params_per_rank if all_linear else 0
    return estimate(
        shape.n_params,
        shape.hidden,
        shape.layers,
        config.method,
        config.batch_size,
        config.max_length,
        dtype_bytes=2 if use_bf16(config) or config.quantization else 4,
        gradient_checkpointing=config.gradient_checkpointing,
        quantization=config.quantization,
        embedding_params=shape.embedding_params,
        vocab=shape.vocab,
        lora_params=lora_params or None,
    ).total


def memory_check(config, shape: tuple | None = None) -> str | None:
    """None when the run should fit; else a message saying how much it needs and what to try.
    A QLoRA run where it cannot load (no CUDA, no bitsandbytes) raises TuneloopError first."""
    from engine.training.config import require_quantization_support

    require_quantization_support(config)
    need = needed(config, shape or model_dims(config.base_model))
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


def fit_to_memory(config, free: float, shape) -> tuple[object, list[str]]:
    """(config, reasons): the config changed, as little as it takes, to fit in `free` bytes:
    gradient checkpointing on first, then a smaller batch_size with a larger grad_accum that
    keep the effective batch. Unchanged (and no reasons) when it fits, or when nothing helps."""
    need = needed(config, shape)
    if need <= free:
        return config, []
    reasons = []
    fitted = config
    if not config.gradient_checkpointing:
        fitted = dataclasses.replace(config, gradient_checkpointing=True)
        reasons.append(
            f"Gradient checkpointing turned on: without it the run needs about {need / GB:.1f} "
            f"GB and {free / GB:.1f} GB are free (about 30% slower)."
        )
    batch, accum = config.batch_size, config.grad_accum
    for smaller in [d for d in range(batch - 1, 0, -1) if batch % d == 0]:
        if needed(fitted, shape) <= free:
            break
        fitted = dataclasses.replace(
            fitted, batch_size=smaller, grad_accum=accum * batch // smaller
        )
    if fitted.batch_size != batch:
        reasons.append(
            f"Batch size {batch} -> {fitted.batch_size} with gradient accumulation {accum} -> "
            f"{fitted.grad_accum} (the same effective batch of {batch * accum}) to fit in "
            f"{free / GB:.1f} GB."
        )
    if needed(fitted, shape) > free:
        return config, []  # nothing fits: memory_check says so, with the original settings
    return fitted, reasons


def fit_to_gpu(config, shape=None) -> tuple[object, list[str]]:
    """`fit_to_memory` against the visible GPU's free memory; no change on a CPU (or when the
    base model's config cannot be read here: the worker checks again before loading)."""
    import torch

    if not torch.cuda.is_available():
        return config, []
    try:
        shape = shape or model_dims(config.base_model)
    except (OSError, ValueError):
        return config, []
    return fit_to_memory(config, available()[0], shape)
