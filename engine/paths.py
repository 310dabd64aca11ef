"""Where the app keeps its state: one data folder, set by TUNELOOP_HOME (default ~/.tuneloop).

It holds the DuckDB file, converted and fine-tuned models, and run folders of background jobs.
"""

from __future__ import annotations

import os
from pathlib import Path


def data_dir() -> Path:
    path = Path(os.environ.get("TUNELOOP_HOME", "~/.tuneloop")).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def db_path() -> Path:
    return data_dir() / "tuneloop.duckdb"


def models_dir() -> Path:
    """Converted and fine-tuned models; TUNELOOP_MODELS may point elsewhere (tests share one
    converted default model across data folders this way)."""
    path = Path(os.environ.get("TUNELOOP_MODELS", data_dir() / "models")).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def exports_dir() -> Path:
    path = data_dir() / "exports"
    path.mkdir(exist_ok=True)
    return path
