"""The serve folder (`<data folder>/serve/`): the files through which the app and the API server
talk, since the server never opens the database.

The app writes (engine/serving/runs.py, keys.py):
- `model.json`: the production model: model_id, path, adapter, prompt_version, instruction.
- `keys.json`: the usable API keys: name, key_hash (SHA-256), expires, log_texts, rate_limit.
- `limits.json`: `Limits`.
- `server.json`: how it started the server (pid, host, port), when it did.

The server writes (engine/serving/worker.py):
- `status.json`: state (loading | ready | failed), url, pid, the model it serves, the one it is
  loading, the last error.
- `requests.jsonl`: one line per request, which the app ingests into the store.
- `server.log`: its console output, when the app started it.

The server re-reads the app's files when their modification time changes (every second).
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from engine.errors import TuneloopError
from engine.jobs.runfolder import read_json, write_json
from engine.paths import data_dir

MODEL_FILE = "model.json"
KEYS_FILE = "keys.json"
LIMITS_FILE = "limits.json"
SERVER_FILE = "server.json"
STATUS_FILE = "status.json"
LOG_FILE = "requests.jsonl"
SERVER_LOG = "server.log"
KEY_PREFIX = "tl-"  # every Tuneloop API key starts so: secret scanners and people recognise it


@dataclass
class Limits:
    """What one request may ask of the server, and how it batches them."""

    max_request_bytes: int = 1_000_000  # a bigger body is refused (413) before it is read
    max_tokens: int = 1024  # most new tokens one request may ask for
    default_max_tokens: int = 256  # new tokens when a request does not say
    requests_per_minute: int = 60  # per key, unless the key has its own limit
    max_batch_size: int = 32  # requests generated together (32 drafts 3.3x faster on 2 cores)
    batch_wait_ms: float = 50.0  # the longest a new batch waits for more requests to join it
    max_queue: int = 256  # requests waiting for the model; past this new ones get 503
    auth_failures_free: int = 10  # wrong keys per client address before 429s that back off
    max_generations: int = 16  # answers one request may ask for: prompts × n × best_of
    request_timeout_s: float = 20.0  # a request's headers and body must be in by then (408)
    keep_alive_s: int = 5  # an idle keep-alive connection is closed after this (at start)
    max_connections: int = 256  # open connections; past this requests get 503 (at start)

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise TuneloopError(f"Limit {f.name} must be a number of 0 or more, not {value!r}.")
        if min(self.max_request_bytes, self.max_tokens, self.requests_per_minute) < 1:
            raise TuneloopError(
                "max_request_bytes, max_tokens and requests_per_minute must be >= 1."
            )
        if min(self.max_batch_size, self.max_queue, self.max_generations) < 1:
            raise TuneloopError("max_batch_size, max_queue and max_generations must be at least 1.")
        if min(self.request_timeout_s, self.keep_alive_s, self.max_connections) <= 0:
            raise TuneloopError("request_timeout_s, keep_alive_s and max_connections must be > 0.")
        if not 1 <= self.default_max_tokens <= self.max_tokens:
            raise TuneloopError("default_max_tokens must be between 1 and max_tokens.")

    @classmethod
    def from_dict(cls, data: dict) -> Limits:
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise TuneloopError(f"Unknown limits {sorted(unknown)}: see engine/serving/folder.py.")
        return cls(**data)

    def to_dict(self) -> dict:
        return asdict(self)


def serve_dir() -> Path:
    """The serve folder (not created here: its existence means a server was set up)."""
    return data_dir() / "serve"


def hash_key(key: str) -> str:
    """The SHA-256 of an API key, hex: what the store and keys.json keep instead of the key."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def read_limits(folder: Path) -> Limits:
    return Limits.from_dict(read_json(folder / LIMITS_FILE, {}) or {})


__all__ = ["Limits", "hash_key", "read_json", "read_limits", "serve_dir", "write_json"]
