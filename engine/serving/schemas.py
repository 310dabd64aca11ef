"""The request bodies the API server accepts (OpenAI's chat completions and completions), and
the one function that turns a body into a checked request or a clear error.

Types are strict (a number in quotes is refused, not guessed), unknown fields are refused by
name, and what this server cannot do (tools, logprobs, penalties, images) is refused with a
message that says so, rather than silently ignored.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

STRICT = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)
MAX_STOPS = 4
MAX_PROMPTS = 16
INT64 = 2**63


class BadRequest(ValueError):
    """A field that is wrong: (message, param)."""

    def __init__(self, message: str, param: str | None = None):
        super().__init__(message)
        self.param = param


class TextPart(BaseModel):
    model_config = STRICT
    type: Literal["text"]
    text: str


class Message(BaseModel):
    model_config = STRICT
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart]
    name: str | None = Field(None, max_length=64)

    def as_dict(self) -> dict:
        """The message as the chat template takes it (a developer message is a system one)."""
        text = (
            self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)
        )
        role = "system" if self.role == "developer" else self.role
        return {"role": role, "content": clean_text(text)}


class StreamOptions(BaseModel):
    model_config = STRICT
    include_usage: bool = False
    include_obfuscation: bool = False  # OpenAI pads chunks against side channels; we do not


class ResponseFormat(BaseModel):
    model_config = STRICT
    type: Literal["text"]


class Sampling(BaseModel):
    """What both endpoints share. Defaults are OpenAI's: temperature 1 samples; send
    temperature 0 for the greedy answers that evaluations measure."""

    model_config = STRICT
    model: str = Field(min_length=1, max_length=256)
    max_tokens: int | None = Field(None, ge=1, le=INT64)
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    n: int = Field(1, ge=1, le=8)
    stream: bool = False
    stream_options: StreamOptions | None = None
    stop: str | list[str] | None = None
    seed: int | None = Field(None, ge=-INT64, lt=2**64)
    frequency_penalty: float = Field(0.0, ge=-2, le=2)
    presence_penalty: float = Field(0.0, ge=-2, le=2)
    user: str | None = Field(None, max_length=256)

    @field_validator("stop")
    @classmethod
    def _stops(cls, value):
        stops = [value] if isinstance(value, str) else (value or [])
        if len(stops) > MAX_STOPS or any(not s or len(s) > 200 for s in stops):
            raise ValueError(f"give at most {MAX_STOPS} stop strings of 1 to 200 characters")
        return value

    @field_validator("frequency_penalty", "presence_penalty")
    @classmethod
    def _no_penalty(cls, value):
        if value != 0:
            raise ValueError("penalties are not supported by this server: leave them at 0")
        return value

    def stops(self) -> tuple[str, ...]:
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop or ())

    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class ChatRequest(Sampling):
    messages: list[Message] = Field(min_length=1, max_length=512)
    max_completion_tokens: int | None = Field(None, ge=1, le=INT64)
    logprobs: Literal[False] | None = None
    response_format: ResponseFormat | None = None
    metadata: dict[str, str] | None = None
    store: bool | None = None

    def new_tokens(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


class CompletionRequest(Sampling):
    """`prompt` is a document (or a list of them): the server asks the model for its summary
    with the stored prompt template, the request every Tuneloop model was trained on."""

    prompt: str | list[str]
    echo: Literal[False] = False
    best_of: Literal[1] | None = None
    logprobs: None = None
    suffix: None = None

    @field_validator("prompt")
    @classmethod
    def _prompts(cls, value):
        if isinstance(value, list) and not 1 <= len(value) <= MAX_PROMPTS:
            raise ValueError(f"give 1 to {MAX_PROMPTS} prompts")
        return value

    def prompts(self) -> list[str]:
        return [self.prompt] if isinstance(self.prompt, str) else list(self.prompt)

    def new_tokens(self) -> int | None:
        return self.max_tokens


_TYPE_TAGS = {"str", "int", "float", "bool", "list", "dict", "none", "function-after"}


def _param(loc: tuple) -> str:
    """`messages.0.content`, without pydantic's union-member tags (`str`, `list[TextPart]`)."""
    parts = [str(p) for p in loc if not (isinstance(p, str) and (p in _TYPE_TAGS or "[" in p))]
    return ".".join(parts)


def parse(cls: type[Sampling], body: dict) -> Sampling:
    """The checked request, or BadRequest naming the first field that is wrong."""
    try:
        return cls.model_validate(body)
    except ValidationError as e:
        errors = e.errors(include_url=False, include_input=False)
        first = errors[0]
        param = _param(first["loc"])
        if first["type"] == "extra_forbidden":
            message = f"Unrecognized request argument supplied: {param}."
        else:
            message = f"{param}: {first['msg'].removeprefix('Value error, ')}."
        if len(errors) > 1:
            message += f" ({len(errors) - 1} more problem(s) in the request.)"
        raise BadRequest(message, param or None) from None


def clean_text(text: str) -> str:
    """Text the tokenizer can take: JSON may carry lone surrogates (\\ud800), which UTF-8
    cannot encode; they become "?"."""
    return text.encode("utf-8", "replace").decode("utf-8") if _has_surrogate(text) else text


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False
